package main

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// refusingPublisher refuses, like a broker's ACL, the alerts of one device.
type refusingPublisher struct {
	refuse    string
	published []string
}

func (p *refusingPublisher) Start(context.Context) error { return nil }
func (p *refusingPublisher) Close() error                { return nil }
func (p *refusingPublisher) Write(_ context.Context, batch []pipeline.Alert) error {
	for i := range batch {
		if batch[i].Device == p.refuse {
			return &mqtt.PublishError{Topic: "vigil/alerts/x/" + p.refuse, Code: 0x87}
		}
	}
	for i := range batch {
		p.published = append(p.published, batch[i].ID)
	}
	return nil
}

func TestMQTTOutputRefusal(t *testing.T) {
	pub := &refusingPublisher{refuse: "rogue"}
	o := &mqttOutput{p: pub}
	batch := []pipeline.Alert{{ID: "a", Device: "pump"}, {ID: "b", Device: "rogue"}, {ID: "c", Device: "fan"}}
	err := o.Write(context.Background(), batch)
	var be *output.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 1 || !output.IsPermanent(be.Failed[0].Err) {
		t.Fatalf("got %v; want alert 1 (the refused device) reported as permanent, alone", err)
	}
	if !slices.Equal(pub.published, []string{"a", "c"}) {
		t.Errorf("published %v; want the alerts the broker accepts", pub.published)
	}
	if err := o.Write(context.Background(), batch[1:2]); !output.IsPermanent(err) {
		t.Errorf("a single refused alert: got %v; want a permanent error", err)
	}
	if err := o.Write(context.Background(), batch[:1]); err != nil {
		t.Errorf("an accepted alert: got %v", err)
	}
}
