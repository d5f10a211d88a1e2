// Package state is Vigil's snapshot file: everything the pipeline has
// learned, written so that a restart, an upgrade or a move to another
// machine starts warm.
//
// A snapshot file is
//
//	header   "VIGILSNP" | version u16 | flags u16 | sequence u64 | created i64
//	records  length u32 | crc32c u32 | kind u8 | key (uvarint length + bytes) | value
//	trailer  "VIGILEND" | records u64 | crc32c u32 of everything before the trailer
//
// little-endian, where each record's CRC (Castagnoli) covers its kind, key
// and value. The kinds are the snapshot's sections: the stream position,
// the fleet judge, each shard's engine-wide state, and one record per device
// keyed by its name (so it can be restored into any number of shards).
// Files are written to a temporary file, fsynced, renamed into place and the
// directory fsynced; a reader checks every checksum and the trailer before
// it hands out a single record, so a truncated or damaged file is refused
// as a whole, with a message that says where.
package state
