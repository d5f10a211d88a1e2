// Package file replays plant log files as pipeline sources.
//
// A source reads one file (or stdin, named "-") and yields its messages as
// [pipeline.FrameBatch]es with Arrival 0, Origin naming the file and Line the
// 1-based line or record number. Three formats are read:
//
//   - JSON lines, what "mosquitto_sub | tee plant.log" keeps: each line is one
//     payload and the topic is unknown ("").
//   - Topic-payload lines, what "mosquitto_sub -v" prints: the topic, one space,
//     the payload. The two line formats are told apart per line, so a file may mix
//     them: a line whose first non-blank byte is '{' or '[' is a payload;
//     otherwise the topic runs to the first space and the payload is the rest.
//   - CSV with a header row (historian exports, the NAB data sets). Each record
//     becomes a JSON payload in the device format; see [CSVMapping].
//
// Any of them may be gzip-compressed, which is detected from the content, not
// the name. Blank lines are skipped, a trailing "\r" is dropped and a last line
// without a newline is kept.
//
// Nothing is silently dropped. A line whose payload is longer than
// [Options].MaxLine is emitted cut to MaxLine+1 bytes, so the decoder's size
// check rejects and counts it, and the rest of the line is skipped; a malformed
// CSV record is emitted as its error text, which the decoder rejects as
// malformed. Either way, reading goes on with the next line.
//
// Reading JSON lines does not allocate per line: payloads are copied straight
// from a large read buffer into the batch, and topics are interned.
//
// A read error ends a source: ReadBatch returns it wrapped with the file name
// (file: read "x.log.gz" after line 12: unexpected EOF), together with the
// frames read before it, and returns it again on later calls. When ctx is done
// ReadBatch returns ctx.Err(); the source can be read on with another ctx,
// except a gzip stream whose read was cut short.
//
// [Merge] replays several sources as one stream in event-time order.
package file
