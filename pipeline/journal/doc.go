// Package journal is Vigil's durable alert journal: every alert is appended
// once, and each output reads it from its own persisted cursor, so a
// destination that is down for hours only falls behind.
//
// On disk a journal is a directory of segment files and a cursors
// directory:
//
//	00000000000000000000.seg   records with offsets 0 … 41999
//	00000000000000042000.seg   records from 42000 on (the head, appended to)
//	cursors/siem.cursor        the next offset output "siem" will read
//
// A segment is named by the offset of its first record. A record is
//
//	crc32c(4) | length(4) | offset(8) | appended(8) | alert(length-16)
//
// little-endian, where the CRC (Castagnoli) covers everything after it, the
// offset is the record's position in the journal (one per alert, from 0),
// appended is the wall-clock time of the append (for lag in seconds), and
// the alert is encoded by AppendAlert. Because every record names its own
// offset, a reader that meets a corrupt record scans forward to the next
// valid one and knows exactly how many alerts it could not read; they are
// counted and logged, never skipped silently. A torn write at the tail
// (a crash mid-append) is cut off when the journal is opened.
//
// Durability: Append writes the batch and, with the default policy, fsyncs
// before it returns, so an acknowledged input never has an alert that only
// lived in memory; with SyncEvery set it returns after the write and a
// background flush fsyncs at that interval (a power loss can then lose up
// to that much; a crash of the process loses nothing). Cursors are written
// atomically (temporary file, fsync, rename) and a segment is removed only
// after every cursor has passed it and those cursors are on disk.
//
// Size: MaxSize caps the journal. When full, Append either waits for the
// slowest output to free a segment (WhenFull "block", the default: the
// input is then not acknowledged, so the broker holds the telemetry) or
// removes the oldest segment and moves the cursors still in it past it
// (WhenFull "drop_oldest"), counting and logging every alert an output
// loses that way.
//
// Why not a library: the candidates were weighed. An append-only WAL such
// as tidwall/wal keeps one read position, not one persisted cursor per
// output, truncates only from the front by index, and on a corrupt entry
// fails the read instead of skipping and counting it; bbolt (a B+tree with
// copy-on-write pages) would store each alert as a key with page-level
// write amplification and an fsync per transaction, and still need the
// cursors and the size cap built on top. What Vigil needs, several
// readers with their own cursors over one append-only log, a size cap with
// a policy, and recovery that skips damage and counts what it lost, is
// the few hundred lines here, tested against torn writes, corruption and a
// full disk.
package journal
