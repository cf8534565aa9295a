#ifndef HOTSPOTD_STOP_SIGNALS_H
#define HOTSPOTD_STOP_SIGNALS_H

/// Installs handlers for SIGTERM and SIGINT and unblocks both in the calling thread.
///
/// The first of them writes its number, one byte, to a pipe whose read end is returned:
/// the program reads it outside the handler and stops gracefully. Any later one ends the
/// process at once, from inside the handler, as the signal's default action would (the process
/// dies of it), so it works even when every other thread of the program is stuck.
///
/// Returns the pipe's read end (close-on-exec), or -errno. Call it once.
int hs_stop_signals_install(void);

/// How many stop signals have arrived so far.
int hs_stop_signals_received(void);

#endif
