//! TCP_NODELAY for the PostgreSQL connections. sqlx 0.9.0 opens its sockets
//! without it (sqlx issue #4335; the fix came after that release), so a
//! request of more than one TLS record (a batch's Bind message) waits for
//! the server's delayed ACK: about 40 ms per statement, measured as a gap
//! between PostgreSQL's parse and bind of every batch statement. Until
//! sqlx sets it again, each new connection has it set here, from outside:
//! every socket of this process gets TCP_NODELAY (which is what every other
//! socket of the node has already: tonic's and the listeners').

/// Sets TCP_NODELAY on every TCP socket this process holds. Other
/// descriptors refuse the option, which is ignored.
#[cfg(target_os = "linux")]
pub fn set_on_all_sockets() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in dir.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `one`,
        // which lives across the call. A descriptor that is not, or no
        // longer, a TCP socket makes the call fail without effect.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_on_all_sockets() {}
