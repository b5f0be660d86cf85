// Package backup is the backup engine: it takes an RDB snapshot of a
// redis-server over the replication protocol, checks it while it streams,
// and stores it in a file:// or s3:// target with a JSON sidecar. It knows
// nothing of clusters, jobs or the store; the caller picks the instance
// (preferably a replica), the target and the key.
//
// # One backup
//
//	t, err := backup.OpenTarget(ctx, "s3://bucket/prefix?endpoint=http://minio:9000&pathStyle=true")
//	key := backup.ObjectKey(cluster, shard, time.Now())      // shop/0/2025-03-09T130507Z.rdb
//	res, err := backup.Run(ctx, addr, password, t, key, usedMemory, progress)
//	// res: Bytes, CRC64, Keys, RDBVersion, Duration, Object (URL)
//
// Run streams the RDB into the target. Bytes go from the socket to the
// target as they arrive; memory is bounded by the buffers (three S3 parts
// of PartSize(sizeHint), at least 5 MiB each; for a file, the 256 KiB the
// stream is read into), never by the dataset, and nothing is staged on
// local disk. Then the sidecar SidecarKey(key) (Metadata, JSON) is written,
// so a bucket can be re-imported into an empty store: List the target,
// ParseObjectKey each .rdb key, ReadMetadata.
//
// # The fast path (file targets)
//
// A backup runs at the speed of `redis-cli --rdb` or faster only if it
// costs little more CPU than copying the bytes: on a busy host the source's
// fork and our process share the cores. So for a file:// target Run does
// not pipe into Put: the goroutine that reads the socket writes each read
// to the temporary file itself (streamToFile, fileObject), with no second
// goroutine and no hand-off. Each read lands straight in the buffer the
// structure walk reads from (the diskless form's markReader only holds back
// the 40-byte tail that may be the end mark), is summed, written, walked,
// and never copied in user space. The file's writeback is started every
// 8 MiB (sync_file_range on Linux), so the fsync before the rename has
// little left to write instead of the whole object. Other targets (S3) get
// the same stream through an io.Pipe into Put.
//
// # Source
//
// StreamRDB sends AUTH, `REPLCONF capa eof`, `REPLCONF rdb-only 1` and
// SYNC, skips the newlines Redis sends as keepalives while its fork runs,
// and reads either form of the reply: `$<len>` followed by the RDB (the
// master wrote it to disk first) or `$EOF:<40-byte mark>` followed by the
// RDB and the mark again (diskless). Managed instances use
// repl-diskless-sync-delay 0, or every backup waits for that delay. A
// replica that is not linked to its master refuses with -NOMASTERLINK
// (ErrNoMasterLink): take the snapshot elsewhere. A connection lost
// mid-transfer is reported as such ("connection lost after N of M bytes"),
// never as a corrupt RDB.
//
// # Verification
//
// Every byte that passes is summed with CRC-64/Jones (Redis' crc64.c) and
// compared with the 8-byte trailer after the EOF opcode (on amd64 by
// carry-less multiplication, crc64_amd64.s: 64-byte blocks folded with
// PCLMULQDQ, about 16 GB/s against 2 GB/s for the slicing-by-8 tables used
// elsewhere and for the ends of each chunk); the header
// (REDIS00xx) is checked; and the stream is parsed as it passes: opcodes,
// AUX fields and every value of every type Redis 7.2 writes are walked by
// their lengths (nothing is decoded or decompressed), so the key count is
// exact and a structural defect is caught even where the checksum is
// disabled. For RDB versions up to 11 the count must also equal the sum of
// the RESIZEDB hints. A value type this parser does not know (a newer
// Redis) stops the walk without failing it: the count then comes from the
// RESIZEDB hints and only the header and the CRC64 were checked
// (Result.KeysCounted false). An RDB saved with `rdbchecksum no` has an
// all-zero trailer: it passes with Result.NoChecksum set, and Result.CRC64
// is our own sum, recorded in the sidecar for later checks.
//
// VerifyReader applies the same checks to a stored object, and VerifyCopy
// does it while copying the object somewhere (a restore's dump.rdb), so a
// corrupt or truncated object is detected before anything loads it. Errors
// about the bytes wrap ErrCorrupt.
//
// # Targets
//
// Target is four methods: Put, Get, Delete, List. Put makes an object
// appear only once its reader reaches io.EOF; a reader error or a cancelled
// context leaves nothing behind. Run relies on that: it ends the pipe with
// the stream's error, so a failed or unverified snapshot never becomes an
// object.
//
//   - file:///abs/dir writes a temporary file in the destination directory,
//     syncs it and renames it into place; on failure the temporary file is
//     removed.
//   - s3://BUCKET/PREFIX?endpoint=URL&region=R&pathStyle=true uses the AWS
//     SDK for Go v2 with the standard credential chain (or WithCredentials).
//     An object smaller than one part is a single PutObject sent after the
//     reader ended; a larger one is a multipart upload whose part size lets
//     10,000 parts cover sizeHint, with up to three parts in memory and in
//     flight, completed after io.EOF and aborted on any failure. OpenTarget
//     checks the bucket with HeadBucket within S3CheckTimeout, so a wrong
//     endpoint, bucket or credential fails early with the S3 error text.
//     The SDK's default CRC32 request checksums are turned off (several
//     S3-compatible servers mishandle their aws-chunked encoding); the RDB's
//     own CRC64 and the signed payload SHA-256 protect the data.
//
// Keys are relative to the target's base: <cluster>/<shard>/<time>.rdb
// (ObjectKey) and <cluster>/<shard>/<time>.json (SidecarKey).
//
// # What callers branch on
//
//   - ErrNoMasterLink: the source replica is not linked to its master;
//     retry on another instance.
//   - ErrCorrupt: the bytes failed verification (bad header, structure,
//     truncation, CRC64); never restore them. A connection lost mid-stream
//     is a plain error naming the bytes received, so the job retries.
//   - ErrNotFound: Target.Get of a missing object (restore of a backup
//     whose object is gone).
//   - context errors: the caller's deadline or cancel.
//
// Timeouts are package variables (DialTimeout, IdleTimeout for the source;
// S3CheckTimeout, S3PartTimeout for S3); everything else is bounded by the
// caller's ctx. No error carries the Redis password, and target URLs are
// redacted before they go into one.
package backup
