// Package history is hearth's message archive: a bbolt file that stores every
// chat message once, numbered per room, and pages through it for the HTTP API (package api).
//
// # Layout
//
// Each room has two top-level buckets, created by the first Append to it
// (room names are hearth.ValidName, so they never contain '/' or NUL):
//
//	"m/<room>"  key: seq as 8 bytes, big-endian      value: JSON of hearth.Message
//	"i/<room>"  key: <from> NUL <id>                value: seq as 8 bytes, big-endian
//	"s/<room>"  key: <word> NUL <seq as 8 bytes>    value: empty (search.go)
//
// Events (reactions, edits, deletes) are entries of "m/<room>" like
// messages, with their own seq and dedupe key; archiving one folds it into
// its target's record in the same transaction (events.go). "s/<room>" is
// the search index of the messages' current text; beside the words it
// holds keys that start with NUL: a mark that the index is complete (Open
// builds it once for a file archived before it existed), the room's
// count of events, and a note per edit of a message (so that a delete
// can remove the text of the earlier edits).
//
// The "m/" bucket's sequence (Bucket.NextSequence) is the room's seq counter:
// seq starts at 1 and only grows, and it survives the deletion of messages,
// so a seq is never reused. Big-endian keys sort in seq order, so paging is a
// cursor walk. The "i/" bucket is the dedupe index: (room, from, id) names a
// message once, whatever the number of retries.
//
// # Growth
//
// Retention (Store.Prune) walks from the First key of "m/<room>" and
// deletes each message too old or beyond the count (of messages), and the
// events before the oldest message kept, together with their "i/<room>"
// entries (from and id are in the stored value) and search words, at most
// a thousand per transaction. Only the oldest are deleted, so the seqs left
// are contiguous. An index entry whose message is gone is treated as
// absent, so an entry left behind never blocks the message from being
// archived again.
// A backup is Store.WriteTo, a consistent snapshot taken in a read
// transaction while writers carry on; GET /api/backup takes it into an
// unlinked temporary file first (Store.Snapshot), so that a slow download
// holds no transaction.
package history
