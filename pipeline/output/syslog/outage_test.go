package syslog

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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

// TestTLSRefusedThenAccepted: the collector refuses the output's client
// certificate (it trusts another CA), then is fixed to accept it. Through
// the journal and the runner the status shows the TLS failure with the
// alerts waiting, none is lost to the refused connections, and after the
// fix every alert arrives once, in order, and the status recovers.
func TestTLSRefusedThenAccepted(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := newPKI(t, t.TempDir())
			other := newPKI(t, t.TempDir())
			refusing := serverTLS(p, version)
			refusing.ClientCAs = other.pool
			var current atomic.Pointer[tls.Config]
			current.Store(refusing)
			c := newCollector(t, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return current.Load(), nil }})
			out := newOutput(t, Config{Address: c.addr(), TLS: tlsClient(p), Timeout: 2 * time.Second})
			fo, err := output.New(output.Config{
				Journal: journal.Config{Dir: filepath.Join(t.TempDir(), "journal")},
				Outputs: []output.Spec{{Name: "siem", Output: out, Batch: output.Batching{Count: 7},
					Retry: output.Retry{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}}},
				DrainTimeout: 10 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			fo.Start(context.Background())
			for i := 0; i < 30; i += 10 {
				if err := fo.Write(context.Background(), batchOf(10, i)); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for fo.Statuses()[0].LastError == "" || c.connections() < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("no failure in the status after %d refused connections: %+v", c.connections(), fo.Statuses()[0])
				}
				time.Sleep(5 * time.Millisecond)
			}
			st := fo.Statuses()[0]
			t.Logf("status while refused: %+v", st)
			if !strings.Contains(st.LastError, "certificate") || st.Lag != 30 {
				t.Errorf("status while refused: %+v; want the certificate error and 30 alerts waiting", st)
			}
			if n := len(c.messages()); n != 0 {
				t.Errorf("%d messages received over refused connections", n)
			}

			current.Store(serverTLS(p, version))
			ms := c.waitMessages(30)
			if got, want := strings.Join(ids(ms), ","), strings.Join(wantIDs(30), ","); got != want {
				t.Errorf("ids %s; want %s (each once, in order)", got, want)
			}
			deadline = time.Now().Add(10 * time.Second)
			for st := fo.Statuses()[0]; st.LastError != "" || st.Lag != 0; st = fo.Statuses()[0] {
				if time.Now().After(deadline) {
					t.Fatalf("status after the fix: %+v; want recovered", st)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := fo.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
