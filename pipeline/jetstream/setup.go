package jetstream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config.
const (
	DefaultStream      = "VIGIL"
	DefaultPartitions  = 12
	DefaultReplicas    = 1
	DefaultLease       = 5 * time.Second
	DefaultMembers     = "vigil-members"
	DefaultCluster     = "vigil-cluster"
	DefaultCheckpoints = "vigil-checkpoints"

	// MinServerVersion is the oldest nats-server Setup accepts: the
	// members bucket's limit markers (watchers see a lease expire) are a
	// 2.11 feature.
	MinServerVersion = "2.11.0"

	// metaPartitions is the stream metadata key recording the partition
	// count, which cannot change once messages are stored.
	metaPartitions = "vigil.partitions"
	maxPartitions  = 1024
)

// Config is the stream and cluster layout. Zero fields take the defaults
// above; Validate checks the rest.
type Config struct {
	// Stream is the stream's name (default VIGIL).
	Stream string `yaml:"stream"`
	// Partitions is the number of partitions (default 12), fixed when the
	// stream is created: a subject transform cannot re-partition stored
	// messages. Growing means a new stream (docs/SCALEOUT.md §7).
	Partitions int `yaml:"partitions"`
	// Replicas of the stream, consumers and buckets (default 1; 3 in
	// production).
	Replicas int `yaml:"replicas"`
	// MaxAge bounds how long messages are kept (0: no limit). It must hold
	// the longest checkpoint interval plus the longest outage survived:
	// a new owner replays the messages since the partition's checkpoint.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds the stream's size (0: no limit); when full, new
	// messages are refused (discard new), so the bridge holds its MQTT
	// acknowledgements instead of old messages being lost.
	MaxBytes int64 `yaml:"max_bytes"`
	// DirectIngest also captures InPrefix.* (devices publishing to NATS)
	// and partitions it with a stream subject transform (server >= 2.10).
	DirectIngest bool `yaml:"direct_ingest"`
	// Lease is the membership lease, the TTL of the members bucket
	// (default 5s, at least 1s): a worker that stops renewing it loses its
	// partitions after about this long, which makes it the failover time.
	Lease time.Duration `yaml:"lease"`
	// Bucket names: members (leases), cluster (ownership records) and
	// checkpoints (object store).
	MembersBucket     string `yaml:"members_bucket"`
	ClusterBucket     string `yaml:"cluster_bucket"`
	CheckpointsBucket string `yaml:"checkpoints_bucket"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.MembersBucket == "" {
		c.MembersBucket = DefaultMembers
	}
	if c.ClusterBucket == "" {
		c.ClusterBucket = DefaultCluster
	}
	if c.CheckpointsBucket == "" {
		c.CheckpointsBucket = DefaultCheckpoints
	}
	return c
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks the configuration (zero fields count as their defaults);
// each error names its key.
func (c *Config) Validate() error {
	d := c.WithDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for _, n := range []struct{ key, v string }{
		{"stream", d.Stream}, {"members_bucket", d.MembersBucket},
		{"cluster_bucket", d.ClusterBucket}, {"checkpoints_bucket", d.CheckpointsBucket},
	} {
		if !nameRE.MatchString(n.v) {
			bad(n.key, "%q: want 1-64 letters, digits, - or _", n.v)
		}
	}
	if d.Partitions < 1 || d.Partitions > maxPartitions {
		bad("partitions", "%d: want 1 to %d", d.Partitions, maxPartitions)
	}
	if d.Replicas < 1 || d.Replicas > 5 {
		bad("replicas", "%d: want 1 to 5", d.Replicas)
	}
	if d.MaxAge < 0 {
		bad("max_age", "must not be negative")
	} else if d.MaxAge > 0 && d.MaxAge < time.Minute {
		bad("max_age", "%s: less than a minute leaves no room to replay from a checkpoint", d.MaxAge)
	}
	if d.MaxBytes < 0 {
		bad("max_bytes", "must not be negative")
	}
	if d.Lease < time.Second {
		bad("lease", "%s: at least 1s", d.Lease)
	}
	return errors.Join(errs...)
}

// StreamConfig returns the stream's configuration.
func (c Config) StreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	sc := jetstream.StreamConfig{
		Name:        c.Stream,
		Description: descPrefix + strconv.Itoa(c.Partitions),
		Subjects:    []string{TelemetryPrefix + ".*.*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		MaxBytes:    -1,
		MaxMsgs:     -1,
		Metadata:    map[string]string{metaPartitions: strconv.Itoa(c.Partitions)},
	}
	if c.MaxBytes > 0 {
		sc.MaxBytes = c.MaxBytes
	}
	if c.MaxAge > 0 {
		sc.Duplicates = min(2*time.Minute, c.MaxAge)
	}
	if c.DirectIngest {
		sc.Subjects = append(sc.Subjects, InPrefix+".*")
		sc.SubjectTransform = &jetstream.SubjectTransformConfig{
			Source:      InPrefix + ".*",
			Destination: fmt.Sprintf("%s.{{partition(%d,1)}}.{{wildcard(1)}}", TelemetryPrefix, c.Partitions),
		}
	}
	return sc
}

// ErrPartitionsChanged is returned by Setup when the stream exists with
// another partition count.
var ErrPartitionsChanged = errors.New("jetstream: the stream's partition count cannot change")

// Setup creates what the scale-out needs, or brings it up to date: the
// stream, the fleet reports' stream, the members and cluster KV buckets
// and the checkpoints object store. It is idempotent. It refuses a server
// older than MinServerVersion and a stream made with another partition
// count (ErrPartitionsChanged).
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("jetstream: invalid config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if err := ServerVersionOK(js.Conn()); err != nil {
		return err
	}
	if _, err := checkStream(ctx, js, cfg); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg.StreamConfig()); err != nil {
		return fmt.Errorf("jetstream: create stream %s: %w", cfg.Stream, err)
	}
	if err := EnsureFleetStream(ctx, js, cfg); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         cfg.MembersBucket,
		Description:    "Vigil workers' membership leases",
		History:        1,
		TTL:            cfg.Lease,
		LimitMarkerTTL: cfg.Lease,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("jetstream: bucket %s: %w", cfg.MembersBucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.ClusterBucket,
		Description: "Vigil partition ownership records",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("jetstream: bucket %s: %w", cfg.ClusterBucket, err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      cfg.CheckpointsBucket,
		Description: "Vigil partition checkpoints",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("jetstream: object store %s: %w", cfg.CheckpointsBucket, err)
	}
	return nil
}

// EnsureStream creates the stream when it does not exist, and otherwise
// checks that it has cfg's partition count (ErrPartitionsChanged), leaving
// its limits as they are. It is what the bridge needs, and works with any
// server with JetStream (DirectIngest needs 2.10); Setup does the rest.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("jetstream: invalid config: %w", err)
	}
	cfg = cfg.WithDefaults()
	found, err := checkStream(ctx, js, cfg)
	if err != nil || found {
		return err
	}
	if _, err := js.CreateStream(ctx, cfg.StreamConfig()); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("jetstream: create stream %s: %w", cfg.Stream, err)
	}
	_, err = checkStream(ctx, js, cfg) // another process may have made it meanwhile
	return err
}

// checkStream reports whether cfg's stream exists, and an error when it
// does with another partition count.
func checkStream(ctx context.Context, js jetstream.JetStream, cfg Config) (bool, error) {
	s, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jetstream: stream %s: %w", cfg.Stream, err)
	}
	have := partitionsOf(s.CachedInfo().Config)
	if have != strconv.Itoa(cfg.Partitions) {
		if have == "" {
			have = "unknown (not made by Vigil)"
		}
		return true, fmt.Errorf("%w: stream %s has %s partitions, the configuration says %d (growing needs a new stream: docs/SCALEOUT.md §7)",
			ErrPartitionsChanged, cfg.Stream, have, cfg.Partitions)
	}
	return true, nil
}

// descPrefix starts the stream's description, which ends with the
// partition count: servers before 2.10 drop stream metadata.
const descPrefix = "Vigil telemetry partitioned by device; partitions="

// partitionsOf returns the partition count recorded in a stream's
// configuration, or "".
func partitionsOf(sc jetstream.StreamConfig) string {
	if p := sc.Metadata[metaPartitions]; p != "" {
		return p
	}
	p, _ := strings.CutPrefix(sc.Description, descPrefix)
	if p == sc.Description {
		return ""
	}
	return p
}

// ServerVersionOK returns an error when the server nc is connected to is
// older than MinServerVersion.
func ServerVersionOK(nc *natsclient.Conn) error {
	v := nc.ConnectedServerVersion()
	if !VersionAtLeast(v, MinServerVersion) {
		return fmt.Errorf("jetstream: nats-server %s is too old: the scale-out needs %s or later (pinned priority groups, KV limit markers)", v, MinServerVersion)
	}
	return nil
}

// VersionAtLeast reports whether server version v ("2.15.3", an optional
// leading "v" and -suffix ignored) is at least min. An unparsable version
// is not.
func VersionAtLeast(v, min string) bool {
	a, ok := versionParts(v)
	if !ok {
		return false
	}
	b, _ := versionParts(min)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

func versionParts(v string) ([3]int, bool) {
	var p [3]int
	v = strings.TrimPrefix(v, "v")
	v, _, _ = strings.Cut(v, "-")
	fs := strings.Split(v, ".")
	if len(fs) != 3 {
		return p, false
	}
	for i, s := range fs {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, false
		}
		p[i] = n
	}
	return p, true
}
