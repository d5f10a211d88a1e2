// Package bench holds Vigil's end-to-end benchmarks: whole replays of a
// generated fleet log and of fixtures/plant.log through file source, decoder,
// shard workers with every detector, and the JSON-lines sink; the same file
// read by a bare bufio.Scanner and by wc -l as ceilings; a stage breakdown;
// and the memory kept per device. The package has no API; see README.md for
// the commands and the results.
package bench
