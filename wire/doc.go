// Package wire is the protocol between fsmirror and the agent that applies
// ops on the far side of a connection (`fsmirror agent` over SSH, and the
// receiver of `fsmirror serve`).
//
// A connection carries frames in both directions. A frame is a 4-byte
// big-endian length n, then n bytes: a type byte and the message. Every
// message but the hello starts with a request ID (uvarint) chosen by the
// client; the server answers each request exactly once, with that ID, in any
// order, so thousands of requests can be in flight on one connection.
// Integers are uvarints (signed ones zig-zag), byte strings a uvarint length
// and the bytes. The decoder checks every length against what is left of the
// frame and every frame against MaxFrame: malformed input is an error, never
// a panic or a large allocation.
//
// The client speaks first: hello (magic, protocol version). The server
// answers with its own hello, or, if it does not speak that version, with an
// error that names both versions, and closes the connection.
//
// A server that must know who the client is (the receiver of `fsmirror
// serve`, reached over TLS: see tls.go) reads an auth message next (a token,
// the directory the client wants, whether to make it) before anything else,
// and answers OK with the Store it grants, or an error and closes the
// connection: no request of a refused client is ever read. A server with an
// idle timeout closes a connection that has had no request open for that
// long, telling the client with an ETIMEDOUT error, so that the client knows
// nothing was in flight and may simply connect again (Client.ClosedIdle).
//
// A write is a request followed by data frames carrying the content and an
// end frame with the total size (and, for a patch, the SHA-256 of the result,
// which the server checks before the file takes its name). A patch carries an
// rsync-style delta (librsync format) against the server's current version of
// the file, whose signature the client asked for first.
//
// The server is a hostile-input boundary: every path must be clean and
// relative (fsmirror.IsValidPath) and is resolved below the root without
// following symlinks. A request with an invalid path, or a frame that does
// not decode, is answered with an error and the connection is closed; nothing
// is written outside the root.
package wire
