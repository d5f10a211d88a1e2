package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/pipeline/cluster"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
)

// partitionStatus is one partition in "vigil cluster status".
type partitionStatus struct {
	Partition int    `json:"partition"`
	Owner     string `json:"owner,omitempty"`
	Live      bool   `json:"owner_live"`
	Released  bool   `json:"released"`
	Epoch     uint64 `json:"epoch"`
	// Last is the stream sequence of the partition's last message, Mark
	// the one its checkpoint covers (0: none).
	Last       uint64     `json:"last_message"`
	Mark       uint64     `json:"checkpoint_mark"`
	Checkpoint *time.Time `json:"checkpoint_time,omitempty"`
	Bytes      int64      `json:"checkpoint_bytes"`
}

// clusterStatus is "vigil cluster status --json".
type clusterStatus struct {
	Stream     string            `json:"stream"`
	Messages   uint64            `json:"messages"`
	Members    []string          `json:"members"`
	Partitions []partitionStatus `json:"partitions"`
	Unowned    []int             `json:"unowned"`
	Fleet      *fleetStatus      `json:"fleet,omitempty"`
}

// fleetStatus is the fleet judgement's part of the status: the judge runs
// on the owner of partition 0.
type fleetStatus struct {
	Judge string `json:"judge,omitempty"`
	// Reports is the number of partition reports kept, LastReport when the
	// last one was stored.
	Reports    uint64     `json:"reports"`
	LastReport *time.Time `json:"last_report,omitempty"`
	// Judged is the end of the last window judged as of partition 0's
	// checkpoint (stream time).
	Judged *time.Time `json:"judged_until,omitempty"`
}

// runCluster is "vigil cluster status": the scale-out's partitions, their
// owners and checkpoints, and the live workers. Exit 1 when a partition
// has no live owner.
func runCluster(ctx context.Context, e *env, args []string) error {
	usage := "vigil cluster status --config FILE [--json]"
	if len(args) == 0 || args[0] != "status" {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	fs := newFlags(e, "cluster status", "--config FILE [--json]")
	cfgPath := fs.String("config", "", "configuration `file` with the cluster section (NATS URL, credentials, stream, buckets)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Cluster.URL == "" {
		return configError{fmt.Errorf("config %s: cluster.url is required for cluster status", *cfgPath)}
	}
	nc, js, err := connectStream(ctx, cfg, "vigil-cluster-status", nil, e.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := readClusterStatus(ctx, js, cfg.Cluster.Config.WithDefaults())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		printClusterStatus(e, st)
	}
	if len(st.Unowned) > 0 {
		return fmt.Errorf("partitions without a live owner: %v", st.Unowned)
	}
	return nil
}

func readClusterStatus(ctx context.Context, js natsjs.JetStream, sc jetstream.Config) (*clusterStatus, error) {
	stream, err := js.Stream(ctx, sc.Stream)
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", sc.Stream, err)
	}
	members, err := js.KeyValue(ctx, sc.MembersBucket)
	if err != nil {
		return nil, fmt.Errorf("jetstream: bucket %s: %w", sc.MembersBucket, err)
	}
	kv, err := js.KeyValue(ctx, sc.ClusterBucket)
	if err != nil {
		return nil, fmt.Errorf("jetstream: bucket %s: %w", sc.ClusterBucket, err)
	}
	st := &clusterStatus{Stream: sc.Stream, Members: []string{}, Unowned: []int{}}
	st.Messages = stream.CachedInfo().State.Msgs
	keys, err := members.Keys(ctx)
	if err != nil && !errors.Is(err, natsjs.ErrNoKeysFound) {
		return nil, fmt.Errorf("jetstream: bucket %s: %w", sc.MembersBucket, err)
	}
	slices.Sort(keys)
	st.Members = append(st.Members, keys...)
	recs, err := cluster.NewRecords(kv).List(ctx, sc.Partitions)
	if err != nil {
		return nil, err
	}
	for p, r := range recs {
		ps := partitionStatus{Partition: p, Owner: r.Owner, Released: r.Released, Epoch: r.Epoch,
			Live: r.Owner != "" && slices.Contains(keys, r.Owner)}
		if m, err := stream.GetLastMsgForSubject(ctx, jetstream.PartitionFilter(p)); err == nil {
			ps.Last = m.Sequence
		}
		if ck := r.Checkpoint; ck != nil {
			t := ck.Created
			ps.Mark, ps.Checkpoint, ps.Bytes = ck.Mark, &t, ck.Bytes
		}
		if !ps.Live || ps.Released {
			st.Unowned = append(st.Unowned, p)
		}
		st.Partitions = append(st.Partitions, ps)
	}
	if fs, err := js.Stream(ctx, jetstream.FleetStreamName(sc)); err == nil {
		f := &fleetStatus{Reports: fs.CachedInfo().State.Msgs}
		if t := fs.CachedInfo().State.LastTime; f.Reports > 0 && !t.IsZero() {
			f.LastReport = &t
		}
		if len(recs) > 0 {
			r := recs[0]
			if r.Owner != "" && !r.Released && slices.Contains(keys, r.Owner) {
				f.Judge = r.Owner
			}
			if ck := r.Checkpoint; ck != nil && ck.FleetJudged > 0 {
				t := time.Unix(0, ck.FleetJudged).UTC()
				f.Judged = &t
			}
		}
		st.Fleet = f
	}
	return st, nil
}

func printClusterStatus(e *env, st *clusterStatus) {
	workers := make([]string, len(st.Members))
	for i, k := range st.Members {
		workers[i], _, _ = strings.Cut(k, ".")
	}
	fmt.Fprintf(e.stdout, "stream %s: %d messages, %d partitions; %d live workers: %s\n",
		st.Stream, st.Messages, len(st.Partitions), len(st.Members), strings.Join(workers, ", "))
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOWNER\tEPOCH\tSTATE\tLAST MESSAGE\tCHECKPOINT MARK\tCHECKPOINT AGE\tBYTES")
	for _, p := range st.Partitions {
		state := "owned"
		switch {
		case p.Owner == "":
			state = "never owned"
		case p.Released:
			state = "released"
		case !p.Live:
			state = "owner gone"
		}
		age := "-"
		if p.Checkpoint != nil {
			age = time.Since(*p.Checkpoint).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%d\t%s\t%d\n", p.Partition, cmp.Or(p.Owner, "-"), p.Epoch, state, p.Last, p.Mark, age, p.Bytes)
	}
	tw.Flush()
	if f := st.Fleet; f != nil {
		last, judged := "never", "-"
		if f.LastReport != nil {
			last = time.Since(*f.LastReport).Round(time.Second).String() + " ago"
		}
		if f.Judged != nil {
			judged = f.Judged.Format(time.RFC3339)
		}
		fmt.Fprintf(e.stdout, "fleet judge: %s (the owner of partition 0); %d reports, the last %s; judged up to %s at partition 0's checkpoint\n",
			cmp.Or(f.Judge, "none"), f.Reports, last, judged)
	}
}
