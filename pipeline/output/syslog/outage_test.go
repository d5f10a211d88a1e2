package syslog

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// TestRsyslogOutage: the SIEM (a real rsyslog over mutual TLS) is down
// while alerts are written through the journal; the pipeline's writes
// return at once, the other output keeps up, and when rsyslog is back every
// alert arrives, once, fields intact.
func TestRsyslogOutage(t *testing.T) {
	r := startRsyslog(t)
	r.stop()
	out, err := New(Config{
		Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(r.tls)),
		TLS:     output.TLS{CAFile: r.pki.CAFile, CertFile: r.pki.ClientCert, KeyFile: r.pki.ClientKey},
		Timeout: 2 * time.Second,
	}, msgFormatter, output.Meta{Hostname: "plant-a"})
	if err != nil {
		t.Fatal(err)
	}
	var other syncbuf.Buffer
	fo, err := output.New(output.Config{
		Journal: journal.Config{Dir: filepath.Join(t.TempDir(), "journal")},
		Outputs: []output.Spec{
			{Name: "siem", Output: out, Retry: output.Retry{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}},
			{Name: "file", Output: &output.Writer{W: &other}},
		},
		DrainTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	fo.Start(context.Background())
	var alerts []pipeline.Alert
	for i := range 200 {
		alerts = append(alerts, nastyAlert(i))
	}
	start := time.Now()
	for i := 0; i < len(alerts); i += 20 {
		if err := fo.Write(context.Background(), alerts[i:i+20]); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("writing 200 alerts took %v with the SIEM down; want the journal to take them at once", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for other.Lines() < len(alerts) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := other.Lines(); n != len(alerts) {
		t.Fatalf("the other output got %d alerts while the SIEM was down; want %d", n, len(alerts))
	}
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	if st := fo.Statuses()[0]; st.LastError == "" || st.Lag != uint64(len(alerts)) {
		t.Errorf("SIEM status while down: %+v; want failing with %d alerts waiting", st, len(alerts))
	}
	r.start()
	r.waitRecords(len(alerts))
	if err := fo.Close(); err != nil {
		t.Fatal(err)
	}
	r.stop() // flush rsyslog's file
	checkRecords(t, r.records(), alerts, "tls")
}
