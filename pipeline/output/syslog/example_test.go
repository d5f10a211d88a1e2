package syslog_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/syslog"
)

func Example() {
	// A receiver on loopback (plain udp elsewhere needs allow_plaintext).
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer pc.Close()

	// MSG is what the formatter makes of the alert: here its JSON.
	format := output.FormatterFunc(func(dst []byte, a *pipeline.Alert) []byte { return a.AppendJSON(dst) })
	out, err := syslog.New(syslog.Config{
		Address: pc.LocalAddr().String(),
		Network: syslog.NetworkUDP,
	}, format, output.Meta{Hostname: "plant-a"})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	defer out.Close(ctx)
	if err := out.Connect(ctx); err != nil {
		panic(err)
	}
	t := time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)
	err = out.Write(ctx, []pipeline.Alert{{
		ID: "e1", Time: t.UnixNano(), Started: t.UnixNano(), Device: `pump "7"`,
		Kind: "overpressure", Detector: "overpressure.spike", Severity: pipeline.Critical,
		State: pipeline.Firing, Signal: "pressure", Message: "9.5 bar",
	}})
	if err != nil {
		panic(err)
	}

	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		panic(err)
	}
	msg := strings.Replace(string(buf[:n]), " "+strconv.Itoa(os.Getpid())+" ", " PID ", 1)
	header, rest, _ := strings.Cut(msg, " [")
	sd, json, _ := strings.Cut(rest, "] ")
	fmt.Println(header)
	fmt.Println("[" + sd + "]")
	fmt.Println(json[:40] + "…")
	// Output:
	// <130>1 2026-03-14T09:26:53.589793Z plant-a vigil PID overpressure
	// [vigil@32473 id="e1" event="e1-firing-1773480413589793238-critical" device="pump \"7\"" kind="overpressure" detector="overpressure.spike" severity="critical" state="firing" signal="pressure"]
	// {"id":"e1","time":"2026-03-14T09:26:53.5…
}
