#define _GNU_SOURCE
#include "stop_signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static atomic_int received;
static int notify_fd = -1;

static void on_stop_signal(int signal_number) {
    if (atomic_fetch_add(&received, 1) > 0) {
        // Die of the signal, as without a handler: a shell sees 128 + its number, and systemd
        // counts a SIGTERM death as a clean stop rather than a failure.
        struct sigaction fallback;
        memset(&fallback, 0, sizeof fallback);
        fallback.sa_handler = SIG_DFL;
        sigemptyset(&fallback.sa_mask);
        sigaction(signal_number, &fallback, NULL);
        sigset_t self;
        sigemptyset(&self);
        sigaddset(&self, signal_number);
        pthread_sigmask(SIG_UNBLOCK, &self, NULL);
        raise(signal_number);
        _exit(128 + signal_number);
    }
    int saved = errno;
    unsigned char byte = (unsigned char)signal_number;
    // The pipe is non-blocking and has room: nothing else writes to it.
    ssize_t ignored = write(notify_fd, &byte, 1);
    (void)ignored;
    errno = saved;
}

int hs_stop_signals_install(void) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        return -errno;
    }
    // The reader blocks; only the handler's end must never block.
    int flags = fcntl(fds[0], F_GETFL);
    if (flags < 0 || fcntl(fds[0], F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int error = errno;
        close(fds[0]);
        close(fds[1]);
        return -error;
    }
    notify_fd = fds[1];

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    // Both signals are held off while either handler runs, so two arriving together count as two.
    sigaddset(&action.sa_mask, SIGTERM);
    sigaddset(&action.sa_mask, SIGINT);
    action.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) {
        return -errno;
    }
    // A parent may have left them blocked; this thread, at least, hears them.
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGTERM);
    sigaddset(&unblock, SIGINT);
    int error = pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
    if (error != 0) {
        return -error;
    }
    return fds[0];
}

int hs_stop_signals_received(void) {
    return atomic_load(&received);
}
