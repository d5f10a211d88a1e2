// Package config loads Vigil's YAML configuration file: defaults first, then
// the file on top, strict about unknown keys, with errors that name the key.
//
// The file is untrusted input to the extent that it must not take Vigil
// down or mislead it: it is read up to MaxFileSize, a key given twice in one
// mapping is an error naming both lines (YAML's last-one-wins would let a
// second "broker:" or "allow_plaintext:" further down go unnoticed), and
// credentials are refused in URLs (they belong in the *_file and *_env
// settings), with errors that show such a URL masked.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/admin"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/internal/redact"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	natsink "github.com/vigil-iot/vigil/pipeline/nats"
)

// Signal maps a field under "data" to a signal name and kind.
type Signal struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
}

// Decoder is the decoder section.
type Decoder struct {
	MaxPayload     int               `yaml:"max_payload"`
	MaxSignals     int               `yaml:"max_signals"`
	Signals        map[string]Signal `yaml:"signals"`
	IgnoreUnmapped bool              `yaml:"ignore_unmapped"`
}

// Pipeline is the pipeline section.
type Pipeline struct {
	Workers   int `yaml:"workers"`
	Decoders  int `yaml:"decoders"`
	BatchSize int `yaml:"batch_size"`
	// DrainTimeout bounds the drain on shutdown (default 10s).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// MaxDevices caps the devices tracked by all shards together (default
	// 1,000,000, about 1.1 GiB); at the cap the shard that meets a new
	// device forgets its least recently seen one. 0: no cap.
	MaxDevices int `yaml:"max_devices"`
}

// Alerts says where alerts go. Every alert is written once to the journal;
// each output then delivers it from there on its own (see package output).
type Alerts struct {
	// Journal is where alerts wait until every output has them.
	Journal Journal `yaml:"journal"`
	// DeadLetter is the file of alerts an output refused for good, with the
	// reason (default: dead-letters.jsonl beside the journal directory).
	DeadLetter string `yaml:"dead_letter"`
	// DrainTimeout is how long outputs may catch up at shutdown before
	// what is left waits in the journal for the next start (default 5s).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Outputs are the destinations.
	Outputs []Output `yaml:"outputs"`

	// The keys below predate alerts.outputs and keep working: each becomes
	// an output named after it.

	// MQTT republishes alerts to the broker (on by default when a broker is
	// configured and no output of type mqtt is listed).
	MQTT AlertsMQTT `yaml:"mqtt"`
	// NATS republishes alerts to NATS (core or JetStream) when its url is set.
	NATS natsink.Config `yaml:"nats"`
	// File appends alerts as JSON lines to a file.
	File string `yaml:"file"`
	// Stdout writes alerts as JSON lines to standard output.
	Stdout bool `yaml:"stdout"`
}

// AlertsMQTT is the MQTT alert publisher.
type AlertsMQTT struct {
	Enabled               *bool `yaml:"enabled"`
	mqtt.PublisherOptions `yaml:",inline"`
}

// On reports whether alerts are republished over MQTT.
func (a AlertsMQTT) On() bool { return a.Enabled == nil || *a.Enabled }

// State is the state section: snapshots of everything learned, so that a
// restart starts warm.
type State struct {
	// File is the snapshot of "vigil run": restored at start when present
	// (or the newest good one of File.1 …), written every Interval, on
	// SIGUSR1 or POST /snapshot on the metrics listener, and at shutdown.
	// "" switches snapshots off.
	File string `yaml:"file"`
	// Interval is the time between periodic snapshots (default 5m; 0 only
	// at shutdown and on demand).
	Interval time.Duration `yaml:"interval"`
	// Keep is how many snapshots are kept: File, File.1, … (default 3).
	Keep int `yaml:"keep"`
	// Encryption encrypts snapshots at rest.
	Encryption StateEncryption `yaml:"encryption"`
}

// StateEncryption names the keys snapshots are encrypted with: age X25519
// identities (made with age-keygen), from files or the environment, never
// from this file.
type StateEncryption struct {
	// KeyFile (or KeyEnv) holds the key new snapshots are encrypted with.
	KeyFile string `yaml:"key_file"`
	KeyEnv  string `yaml:"key_env"`
	// OldKeyFiles hold earlier keys, kept to read snapshots written before
	// a rotation.
	OldKeyFiles []string `yaml:"old_key_files"`
}

// On reports whether snapshots are encrypted.
func (e StateEncryption) On() bool { return e.KeyFile != "" || e.KeyEnv != "" }

// Class is a device class in the file: its detectors section overlays the
// top-level one.
type Class struct {
	Name      string    `yaml:"name"`
	Devices   []string  `yaml:"devices"`
	Topics    []string  `yaml:"topics"`
	Detectors yaml.Node `yaml:"detectors"`
}

// Cluster is the NATS JetStream scale-out (docs/SCALEOUT.md): the
// connection to the servers and the partitioned stream. "vigil bridge"
// publishes into it.
type Cluster struct {
	jetstream.ConnConfig `yaml:",inline"`
	jetstream.Config     `yaml:",inline"`
	// WorkerID names this worker of "vigil run --source jetstream"
	// (default: the host name). Partitions are assigned by it, so a
	// restarted worker gets its partitions back.
	WorkerID string `yaml:"worker_id"`
	// CheckpointInterval is how often each owned partition's learned
	// state is checkpointed (default 1m); a new owner replays the
	// partition's messages since the last checkpoint.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// DefaultCheckpointInterval is Cluster.CheckpointInterval's default.
const DefaultCheckpointInterval = time.Minute

var workerIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks the section; errors name the key.
func (c *Cluster) Validate() error {
	return errors.Join(c.ConnConfig.Validate(), c.Config.Validate(), c.validateWorker())
}

// validateWorker checks the workers' keys.
func (c *Cluster) validateWorker() error {
	var errs []error
	if c.WorkerID != "" && !workerIDRE.MatchString(c.WorkerID) {
		errs = append(errs, fmt.Errorf("worker_id: %q: want 1-64 letters, digits, - or _", c.WorkerID))
	}
	if c.CheckpointInterval < 0 || (c.CheckpointInterval > 0 && c.CheckpointInterval < time.Second) {
		errs = append(errs, fmt.Errorf("checkpoint_interval: %s: at least 1s", c.CheckpointInterval))
	}
	return errors.Join(errs...)
}

// Bridge tunes "vigil bridge".
type Bridge struct {
	// MaxPending bounds the messages published to JetStream and not yet
	// acknowledged by it (default 4096).
	MaxPending int `yaml:"max_pending"`
	// Tick is how long a partition may see no message before the bridge
	// publishes a tick to it (default 1s; negative: no ticks).
	Tick time.Duration `yaml:"tick"`
	// DrainTimeout bounds the wait for outstanding acknowledgements at
	// shutdown (default 10s).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Pack is the most MQTT messages of one partition packed into one
	// stream message (default 64; 1: one stream message per MQTT message,
	// on its device's subject).
	Pack int `yaml:"pack"`
}

// Validate checks the section; errors name the key.
func (b *Bridge) Validate() error {
	var errs []error
	if b.MaxPending < 0 {
		errs = append(errs, errors.New("max_pending: must not be negative"))
	}
	if b.Tick > 0 && b.Tick < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("tick: %s: at least 100ms (or negative for none)", b.Tick))
	}
	if b.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain_timeout: must not be negative"))
	}
	if b.Pack < 0 || b.Pack > 4096 {
		errs = append(errs, fmt.Errorf("pack: %d: want 1 to 4096 (0: the default, 64)", b.Pack))
	}
	return errors.Join(errs...)
}

// File is the configuration file.
type File struct {
	// MQTT is the broker connection of "vigil run" (and the alert publisher).
	MQTT mqtt.Config `yaml:"mqtt"`
	// Source tunes the MQTT source.
	Source    mqtt.SourceOptions `yaml:"source"`
	Alerts    Alerts             `yaml:"alerts"`
	State     State              `yaml:"state"`
	Metrics   admin.Config       `yaml:"metrics"`
	Decoder   Decoder            `yaml:"decoder"`
	Pipeline  Pipeline           `yaml:"pipeline"`
	Detectors detectors.Params   `yaml:"detectors"`
	Classes   []Class            `yaml:"classes"`
	// Fleet judges the fleet as a whole (identity spraying); global, not
	// per class.
	Fleet detectors.FleetConfig `yaml:"fleet"`
	// Cluster is the JetStream scale-out's connection and stream.
	Cluster Cluster `yaml:"cluster"`
	// Bridge tunes "vigil bridge" (MQTT into the stream).
	Bridge   Bridge            `yaml:"bridge"`
	resolved []detectors.Class `yaml:"-"`
}

// Default returns the configuration used when there is no file.
func Default() *File {
	f := &File{
		MQTT:      mqtt.DefaultConfig(),
		Source:    mqtt.SourceOptions{ExcludeTopicPrefix: "vigil/", Linger: mqtt.DefaultLinger},
		Metrics:   admin.Config{Listen: "127.0.0.1:9464"},
		Decoder:   Decoder{MaxPayload: 64 << 10, MaxSignals: 32, Signals: map[string]Signal{}},
		Pipeline:  Pipeline{DrainTimeout: 10 * time.Second, MaxDevices: 1_000_000},
		Alerts:    Alerts{Journal: Journal{Dir: "vigil-data/journal"}},
		State:     State{File: "vigil-data/vigil.state", Interval: 5 * time.Minute, Keep: 3},
		Detectors: detectors.DefaultParams(),
		Fleet:     detectors.DefaultFleet(),
	}
	for field, s := range pipeline.DefaultSignals() {
		f.Decoder.Signals[field] = Signal{Name: s.Name, Kind: s.Kind.String()}
	}
	return f
}

// MaxFileSize is the largest configuration Load and Parse accept: 1 MiB,
// some hundred times the annotated example. Decoding YAML takes several
// times the text's size in memory, so an unbounded file (a log given as
// --config by mistake, /dev/zero) could exhaust it.
const MaxFileSize = 1 << 20

// maxLinger bounds source.linger, which can add up to itself to the time
// every message waits.
const maxLinger = 100 * time.Millisecond

// Load reads and validates a configuration file. It reads at most
// MaxFileSize bytes (and one more, to tell a longer file), also from a pipe
// or /dev/stdin, whose size is not known in advance.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		size := fmt.Sprintf("more than %d bytes", MaxFileSize)
		if fi, err := fh.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fmt.Sprintf("%d bytes", fi.Size())
		}
		return nil, fmt.Errorf("config %s: the file is %s; the limit is %d bytes (1 MiB)", path, size, MaxFileSize)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// Parse decodes and validates configuration text on top of the defaults.
// The text holds one YAML document (JSON is YAML too) of at most
// MaxFileSize bytes, in which no mapping has a key twice.
func Parse(text []byte) (*File, error) {
	if len(text) > MaxFileSize {
		return nil, fmt.Errorf("the text is %d bytes; the limit is %d bytes (1 MiB)", len(text), MaxFileSize)
	}
	f := Default()
	if len(bytes.TrimSpace(text)) > 0 {
		doc, err := checkDocument(text)
		if err != nil {
			return nil, err
		}
		if errs := checkNode(doc, reflect.TypeFor[File](), ""); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		dec := yaml.NewDecoder(bytes.NewReader(text))
		dec.KnownFields(true)
		// A given signals map replaces the default mapping rather than merging
		// into it, so a file can remove a default signal.
		var probe struct {
			Decoder struct {
				Signals map[string]Signal `yaml:"signals"`
			} `yaml:"decoder"`
		}
		if err := yaml.Unmarshal(text, &probe); err == nil && probe.Decoder.Signals != nil {
			f.Decoder.Signals = nil
		}
		if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
			return nil, withPaths(doc, err)
		}
	}
	f.resolved = nil
	for i, c := range f.Classes {
		p := f.Detectors // the class starts from the top-level parameters
		p.Overpressure.Limit = clonePtr(p.Overpressure.Limit)
		p.Thermal.High = clonePtr(p.Thermal.High)
		p.Thermal.Low = clonePtr(p.Thermal.Low)
		if !c.Detectors.IsZero() {
			if err := decodeChecked(&c.Detectors, &p, fmt.Sprintf("classes[%d].detectors", i)); err != nil {
				return nil, err
			}
		}
		f.resolved = append(f.resolved, detectors.Class{Name: c.Name, Devices: c.Devices, Topics: c.Topics, Params: p})
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkDocument checks that text is a single YAML document in which no
// mapping has a key twice, at any depth, and returns it. YAML's decoder
// reports some duplicates itself, but without the key's path, and not
// inside the parts decoded later from a node (classes' detectors, outputs).
func checkDocument(text []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &doc, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("line %d: a second YAML document (after ---); the configuration is one document", extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return &doc, errors.Join(duplicateKeys(&doc, "")...)
}

// duplicateKeys reports each key given twice in a mapping under n, by key
// path (alerts.outputs[1].url) and both lines. Aliases are not followed:
// the anchored node is checked where it is defined. A merge key (<<) is
// not a duplicate of the keys it merges: YAML lets the mapping's own keys
// override those.
func duplicateKeys(n *yaml.Node, path string) []error {
	var errs []error
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			errs = append(errs, duplicateKeys(c, path)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			errs = append(errs, duplicateKeys(c, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case yaml.MappingNode:
		first := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			if k.Kind == yaml.ScalarNode && k.Tag != "!!merge" {
				if line, dup := first[k.Value]; dup {
					errs = append(errs, fmt.Errorf("%s: duplicate key at line %d (first at line %d)", key, k.Line, line))
				} else {
					first[k.Value] = k.Line
				}
			}
			errs = append(errs, duplicateKeys(v, key)...)
		}
	}
	return errs
}

// under prefixes each error of err with key: the errors a Validate method
// joins are listed one per line, and each line names its key
// (mqtt.broker: …, mqtt.client_id: …), not only the first.
func under(key string, err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, under(key, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s.%w", key, err)
}

// decodeChecked decodes a node into v after checking it with checkNode,
// which refuses unknown keys (yaml.Node.Decode has no strict mode). Unlike
// re-encoding the node to decode it strictly, this keeps the file's line
// numbers in errors; path names the node's key.
func decodeChecked(n *yaml.Node, v any, path string) error {
	if errs := checkNode(n, reflect.TypeOf(v), path); len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := n.Decode(v); err != nil {
		return withPaths(n, err)
	}
	return nil
}

func clonePtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Validate checks the whole file; errors name the key.
func (f *File) Validate() error {
	var errs []error
	dc, err := f.DecoderConfig()
	if err != nil {
		errs = append(errs, err)
	} else if err := dc.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("decoder.%w", err))
	}
	if f.MQTT.Broker != "" {
		if err := f.MQTT.Validate(); err != nil {
			errs = append(errs, under("mqtt", err))
		}
	}
	if f.Cluster.URL != "" || f.Cluster.CredsFile != "" {
		if err := f.Cluster.Validate(); err != nil {
			errs = append(errs, under("cluster", err))
		}
	} else if err := errors.Join(f.Cluster.Config.Validate(), f.Cluster.validateWorker()); err != nil {
		errs = append(errs, under("cluster", err))
	}
	if err := f.Bridge.Validate(); err != nil {
		errs = append(errs, under("bridge", err))
	}
	if err := f.validateOutputs(); err != nil {
		errs = append(errs, err)
	}
	if f.Pipeline.Workers < 0 || f.Pipeline.Decoders < 0 || f.Pipeline.BatchSize < 0 || f.Pipeline.DrainTimeout < 0 || f.Pipeline.MaxDevices < 0 {
		errs = append(errs, fmt.Errorf("pipeline: workers, decoders, batch_size, drain_timeout and max_devices must not be negative"))
	}
	if f.Source.MaxQueuedQoS0 < 0 || f.Source.MaxQueuedBytes < 0 {
		errs = append(errs, errors.New("source: max_queued_qos0 and max_queued_bytes must not be negative"))
	}
	if l := f.Source.Linger; l < 0 || l > maxLinger {
		errs = append(errs, fmt.Errorf("source.linger: must be between 0s and %v, not %v", maxLinger, l))
	}
	if f.State.Interval < 0 || f.State.Keep < 0 {
		errs = append(errs, errors.New("state: interval and keep must not be negative"))
	}
	if enc := f.State.Encryption; enc.KeyFile != "" && enc.KeyEnv != "" {
		errs = append(errs, errors.New("state.encryption: key_file and key_env are alternatives; give one"))
	} else if enc.KeyEnv != "" && redact.EnvName(enc.KeyEnv) != nil {
		errs = append(errs, fmt.Errorf("state.encryption.key_env: %w", redact.EnvName(enc.KeyEnv)))
	} else if !enc.On() && len(enc.OldKeyFiles) > 0 {
		errs = append(errs, errors.New("state.encryption.old_key_files: needs key_file or key_env (the key new snapshots use)"))
	}
	if err := f.Fleet.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("fleet: %w", err))
	}
	dcfg := f.DetectorConfig()
	if err := dcfg.Params.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("detectors: %w", err))
	}
	names := map[string]bool{}
	for i := range dcfg.Classes {
		cl := &dcfg.Classes[i]
		if names[cl.Name] {
			errs = append(errs, fmt.Errorf("classes[%d]: duplicate class name %q", i, cl.Name))
		}
		names[cl.Name] = true
		if err := cl.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("classes[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// DecoderConfig returns the decoder configuration.
func (f *File) DecoderConfig() (pipeline.DecoderConfig, error) {
	dc := pipeline.DecoderConfig{
		MaxPayload:     f.Decoder.MaxPayload,
		MaxSignals:     f.Decoder.MaxSignals,
		IgnoreUnmapped: f.Decoder.IgnoreUnmapped,
		Signals:        map[string]pipeline.SignalSpec{},
	}
	for field, s := range f.Decoder.Signals {
		k, err := pipeline.ParseSignalKind(s.Kind)
		if err != nil {
			return dc, fmt.Errorf("decoder.signals.%s.kind: %w", field, err)
		}
		name := s.Name
		if name == "" {
			name = field
		}
		dc.Signals[field] = pipeline.SignalSpec{Name: name, Kind: k}
	}
	return dc, nil
}

// DetectorConfig returns the detection configuration with classes resolved
// and the fleet judge's section: what every command builds its detectors
// from (run, demo, replay, tune, state inspect, reload).
func (f *File) DetectorConfig() detectors.Config {
	return detectors.Config{Params: f.Detectors, Classes: f.resolved, Fleet: f.Fleet}
}
