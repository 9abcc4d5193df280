// Package index is a persistent record of what one destination holds, so
// that a restart compares the source with the record instead of listing the
// destination, which for a remote target is most of the cost of a restart.
//
// An Index is one bbolt file per source/destination pair; Open refuses a
// file of another pair (ErrOtherMirror) or one that another process has open
// (ErrLocked), and replaces a file it cannot read by an empty index
// (Recovered). Wrap puts the index around the destination's Target.
//
// # The record never runs ahead of the destination
//
// An op is recorded after the destination applied it, never before. Changes
// are batched in memory and committed by a background flusher, at most
// 100 ms or 1,000 changes later; reads see them at once. A crash loses the
// last batch, so the record may lag the destination; to be sure it does not
// also miss a delete, the file is marked unclean on disk by Open and clean
// again by Close, and an index its last user did not close is not Trusted:
// the caller then compares with the destination itself (untrusted Target),
// which rebuilds the record.
//
// Where the record cannot tell, it says less rather than something wrong:
//   - UnknownMtime is the mtime of a directory in which a name was created
//     or removed since its metadata was set (that moved its mtime on the
//     destination), and of a node an op left in doubt, whose mode and owner
//     are then unknown too. No source has it, so its metadata is always set
//     again.
//   - A path is recorded only in a directory the record holds. So removing a
//     directory from the record removes everything below it, and a path the
//     record does not know has nothing recorded below it.
//   - Names of one inode share an inode number; setting the metadata of one
//     sets it for all.
//
// # Layout
//
// Bucket "entries" maps parent directory + "\x00" + name to a fixed binary
// encoding of the entry (see appendValue); the children of a directory are
// the keys that begin with "dir\x00", everything deeper the keys that begin
// with "dir/". A listing is one cursor range. Bucket "meta" holds the format
// version, the source and destination, the clean flag and the next
// synthetic inode number.
package index
