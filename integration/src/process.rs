//! Starting child processes that cannot outlive the test process.
//!
//! `prctl(PR_SET_PDEATHSIG, SIGKILL)` makes the kernel kill the child when
//! its parent dies; but "parent" means the *thread* that forked it. Tests
//! run on short-lived threads, and a test may keep an Envoy in a `static`
//! shared by several tests, so children are forked from one spawner thread
//! that lives as long as the process: they die with the process, not with
//! whichever test thread happened to start them.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type Request = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` so that it is killed (SIGKILL) when this process dies, even
/// by SIGKILL or abort where no destructor runs. Dropping the `Child` does
/// not kill it: callers kill and wait (see `Envoy`'s `Drop`).
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl, getppid and _exit are async-signal-safe; the closure
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the spawner thread");
        Mutex::new(tx)
    });
    let (reply, result) = channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .expect("spawner thread is alive");
    result.recv().expect("spawner thread answers")
}
