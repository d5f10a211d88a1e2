package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	natsink "github.com/vigil-iot/vigil/pipeline/nats"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/output/httpout"
	"github.com/vigil-iot/vigil/pipeline/output/syslog"
)

// Journal is the alerts.journal section: where alerts wait until every
// output has them.
type Journal struct {
	// Dir holds the segments and the outputs' cursors (default
	// "vigil-data/journal", relative to the working directory).
	Dir string `yaml:"dir"`
	// Fsync is "batch" (default: every batch is fsynced before the input is
	// acknowledged) or an interval such as "100ms".
	Fsync       string   `yaml:"fsync"`
	SegmentSize ByteSize `yaml:"segment_size"` // default 16MiB
	MaxSize     ByteSize `yaml:"max_size"`     // default 1GiB
	// WhenFull is "block" (default: hold the input until the slowest
	// output catches up) or "drop_oldest" (counted and logged).
	WhenFull string `yaml:"when_full"`
}

// JournalConfig returns the journal's configuration.
func (j Journal) JournalConfig() (journal.Config, error) {
	c := journal.Config{Dir: j.Dir, SegmentSize: int64(j.SegmentSize), MaxSize: int64(j.MaxSize), WhenFull: j.WhenFull}
	switch j.Fsync {
	case "", "batch":
	default:
		d, err := time.ParseDuration(j.Fsync)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("fsync: %q: want batch or a positive duration such as 100ms", j.Fsync)
		}
		c.SyncEvery = d
	}
	return c, c.Validate()
}

// ByteSize is a size in bytes, written as a number or with a unit: "64KiB",
// "16MiB", "1GiB" (also KB, MB, GB as powers of 1000).
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return fmt.Errorf("line %d: %q is not a size (want bytes, or a number with KiB, MiB or GiB)", n.Line, n.Value)
	}
	*b = ByteSize(v * mult)
	return nil
}

// Output types.
const (
	TypeFile   = "file"
	TypeStdout = "stdout"
	TypeMQTT   = "mqtt"
	TypeNATS   = "nats"
	TypeHEC    = "hec"
	TypeBulk   = "elasticsearch"
	TypeHook   = "webhook"
	TypeSyslog = "syslog"
)

// OutputCommon holds the keys every output has.
type OutputCommon struct {
	// Name identifies the output in metrics, logs and its journal cursor
	// (default: its type). Renaming an output starts it afresh.
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Format is the event format: json (Vigil's own), cef, leef, ecs or
	// ocsf, where the type allows a choice.
	Format string `yaml:"format"`
	// LEEFDelimiter is the attribute delimiter of format leef: one
	// character or its code as 0x09 / x5E (default ^).
	LEEFDelimiter string          `yaml:"leef_delimiter"`
	Batch         output.Batching `yaml:"batch"`
	Retry         output.Retry    `yaml:"retry"`
}

// Output is one entry of alerts.outputs: the common keys and the type's
// own settings (*FileOutput, *MQTTOutput, *natsink.Config, …).
type Output struct {
	OutputCommon
	Settings any
	key      string // the configuration key, for errors: set for the legacy keys
}

// FileOutput is the settings of a file output.
type FileOutput struct {
	Path string `yaml:"path"`
	// Fsync (default true) makes each batch durable before the output's
	// journal cursor moves.
	Fsync *bool `yaml:"fsync"`
}

// MQTTOutput republishes alerts on the broker of the mqtt section.
type MQTTOutput struct {
	mqtt.PublisherOptions `yaml:",inline"`
}

// outputTypes makes the settings of each type, for strict decoding.
var outputTypes = map[string]func() any{
	TypeFile:   func() any { return &FileOutput{} },
	TypeStdout: func() any { return &struct{}{} },
	TypeMQTT:   func() any { return &MQTTOutput{} },
	TypeNATS:   func() any { return &natsink.Config{} },
	TypeHEC:    func() any { return &httpout.HECConfig{} },
	TypeBulk:   func() any { return &httpout.BulkConfig{} },
	TypeHook:   func() any { return &httpout.WebhookConfig{} },
	TypeSyslog: func() any { return &syslog.Config{} },
}

// UnmarshalYAML decodes an output strictly: the keys of its type and the
// common ones, nothing else.
func (o *Output) UnmarshalYAML(n *yaml.Node) error {
	var probe struct {
		Type string `yaml:"type"`
	}
	if err := n.Decode(&probe); err != nil {
		return err
	}
	st, ok := outputStruct(probe.Type)
	if !ok {
		return fmt.Errorf("line %d: type: %q is not an output type (want one of %s)", n.Line, probe.Type, strings.Join(typeNames(), ", "))
	}
	// Decode into a struct that inlines the common keys and the type's.
	v := reflect.New(st)
	if err := decodeChecked(n, v.Interface(), ""); err != nil {
		return fmt.Errorf("%s output: %w", probe.Type, err)
	}
	settings := reflect.New(st.Field(1).Type)
	o.OutputCommon = v.Elem().Field(0).Interface().(OutputCommon)
	settings.Elem().Set(v.Elem().Field(1))
	o.Settings = settings.Interface()
	if o.Name == "" {
		o.Name = o.Type
	}
	return nil
}

func typeNames() []string {
	var names []string
	for k := range outputTypes {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// validateOutputs checks alerts.journal and alerts.outputs (with the legacy
// keys folded in); errors name the key.
func (f *File) validateOutputs() error {
	var errs []error
	if _, err := f.Alerts.Journal.JournalConfig(); err != nil {
		errs = append(errs, fmt.Errorf("alerts.journal.%w", err))
	}
	if f.Alerts.DrainTimeout < 0 {
		errs = append(errs, errors.New("alerts.drain_timeout: must not be negative"))
	}
	outs, err := f.AllOutputs()
	if err != nil {
		return err
	}
	seen := map[string]int{}
	for i, o := range outs {
		key := fmt.Sprintf("alerts.outputs[%d] (%s)", i, o.Name)
		if o.key != "" {
			key = o.key
		}
		if j, dup := seen[o.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: name %q is also used by alerts.outputs[%d]; names must be unique", key, o.Name, j))
		}
		seen[o.Name] = i
		if strings.ContainsAny(o.Name, `/\ `) || o.Name == "." || o.Name == ".." {
			errs = append(errs, fmt.Errorf("%s.name: %q: use letters, digits, '-', '_' and '.'", key, o.Name))
		}
		if err := o.Batch.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", key, err))
		}
		if err := o.Retry.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", key, err))
		}
		if err := validateFormat(o); err != nil {
			errs = append(errs, fmt.Errorf("%s.format: %w", key, err))
		} else if err := (format.Config{Format: FormatOf(o), LEEFDelimiter: o.LEEFDelimiter}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		if err := f.validateSettings(o); err != nil {
			errs = append(errs, under(key, err))
		}
	}
	return errors.Join(errs...)
}

func (f *File) validateSettings(o Output) error {
	switch s := o.Settings.(type) {
	case *FileOutput:
		if s.Path == "" {
			return errors.New("path: required")
		}
	case *MQTTOutput:
		if f.MQTT.Broker == "" {
			return errors.New("type: an mqtt output publishes on the broker of the mqtt section, which has none")
		}
		if s.ClientID != "" && s.ClientID == f.MQTT.ClientID {
			return errors.New("client_id: must differ from the source's client ID (mqtt.client_id)")
		}
	case *natsink.Config:
		return s.Validate()
	case interface{ Validate() error }:
		return s.Validate()
	}
	return nil
}

// Files lists the files the configuration refers to, by key: TLS material,
// credentials and outputs' secrets (every key ending in _file), for
// "config check".
func (f *File) Files() map[string]string {
	m := map[string]string{}
	collectFiles(reflect.ValueOf(f.MQTT), "mqtt", m)
	collectFiles(reflect.ValueOf(f.State.Encryption), "state.encryption", m)
	collectFiles(reflect.ValueOf(f.Cluster), "cluster", m)
	outs, _ := f.AllOutputs()
	for i, o := range outs {
		key := fmt.Sprintf("alerts.outputs[%d]", i)
		if o.key != "" {
			key = o.key
		}
		collectFiles(reflect.ValueOf(o.Settings), key, m)
	}
	return m
}

// collectFiles walks v for string fields whose yaml key ends in _file.
func collectFiles(v reflect.Value, prefix string, m map[string]string) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := strings.Split(sf.Tag.Get("yaml"), ",")
		key := prefix
		if tag[0] != "" && tag[0] != "-" {
			key = prefix + "." + tag[0]
		} else if tag[0] == "-" {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.String && strings.HasSuffix(tag[0], "_file") {
			if s := fv.String(); s != "" {
				m[key] = s
			}
			continue
		}
		if fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String && strings.HasSuffix(tag[0], "_files") {
			for j := range fv.Len() {
				m[fmt.Sprintf("%s[%d]", key, j)] = fv.Index(j).String()
			}
			continue
		}
		collectFiles(fv, key, m)
	}
}

// CheckFiles reports the referenced files that cannot be read.
func (f *File) CheckFiles() error {
	var errs []error
	files := f.Files()
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fh, err := os.Open(files[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		fh.Close()
	}
	return errors.Join(errs...)
}

// publicFiles are the *_file keys that name public material: certificates,
// not secrets. Every other *_file key (passwords, tokens, private keys,
// credentials, state encryption keys) names a secret.
var publicFiles = []string{"ca_file", "cert_file"}

// SecretWarnings reports the secret files the configuration names that
// group or others may read (mode & 0o077 != 0), one line each naming the key
// path, for "config check". Files that cannot be read are CheckFiles'
// business and left out here. On Windows, where the mode bits do not say
// who may read a file, it reports nothing.
func (f *File) SecretWarnings() []string {
	if runtime.GOOS == "windows" {
		return nil
	}
	files := f.Files()
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var warnings []string
	for _, k := range keys {
		last := k[strings.LastIndexByte(k, '.')+1:]
		if slices.Contains(publicFiles, last) {
			continue
		}
		fi, err := os.Stat(files[k])
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			warnings = append(warnings, fmt.Sprintf("%s: the secret file %s is open to %s (mode %04o); restrict it with: chmod 600 %s",
				k, files[k], readers(perm), perm, files[k]))
		}
	}
	return warnings
}

// readers says who besides the owner may read or write a file of mode perm.
func readers(perm os.FileMode) string {
	switch g, o := perm&0o070 != 0, perm&0o007 != 0; {
	case g && o:
		return "group and others"
	case g:
		return "its group"
	}
	return "others"
}

// AllOutputs returns alerts.outputs followed by the outputs of the legacy
// keys: alerts.mqtt, alerts.nats, alerts.file and alerts.stdout become
// outputs named mqtt, nats, file and stdout.
func (f *File) AllOutputs() ([]Output, error) {
	has := func(typ string) bool {
		for _, o := range f.Alerts.Outputs {
			if o.Type == typ {
				return true
			}
		}
		return false
	}
	var legacy []Output
	a := &f.Alerts
	if f.MQTT.Broker != "" && (a.MQTT.Enabled != nil && *a.MQTT.Enabled || a.MQTT.Enabled == nil && !has(TypeMQTT)) {
		legacy = append(legacy, Output{OutputCommon: OutputCommon{Name: "mqtt", Type: TypeMQTT, Format: "json"}, Settings: &MQTTOutput{a.MQTT.PublisherOptions}, key: "alerts.mqtt"})
	}
	if a.NATS.URL != "" {
		nc := a.NATS
		legacy = append(legacy, Output{OutputCommon: OutputCommon{Name: "nats", Type: TypeNATS, Format: "json"}, Settings: &nc, key: "alerts.nats"})
	}
	if a.File != "" {
		legacy = append(legacy, Output{OutputCommon: OutputCommon{Name: "file", Type: TypeFile, Format: "json"}, Settings: &FileOutput{Path: a.File}, key: "alerts.file"})
	}
	if a.Stdout {
		legacy = append(legacy, Output{OutputCommon: OutputCommon{Name: "stdout", Type: TypeStdout, Format: "json"}, Settings: &struct{}{}, key: "alerts.stdout"})
	}
	for _, l := range legacy {
		for _, o := range a.Outputs {
			if o.Name == l.Name {
				return nil, fmt.Errorf("alerts.%s: an output in alerts.outputs is named %q too; move the settings into alerts.outputs", l.Name, l.Name)
			}
		}
	}
	return append(slices.Clip(a.Outputs), legacy...), nil
}

// formats lists the formats each type can carry; the first is the default.
var formats = map[string][]string{
	TypeFile:   {"json", "cef", "leef", "ecs", "ocsf"},
	TypeStdout: {"json", "cef", "leef", "ecs", "ocsf"},
	TypeMQTT:   {"json"},
	TypeNATS:   {"json"},
	TypeHEC:    {"json", "ecs", "ocsf", "cef", "leef"},
	TypeBulk:   {"ecs", "json", "ocsf"},
	TypeHook:   {"json", "ecs", "ocsf"},
	TypeSyslog: {"cef", "leef", "json", "ecs", "ocsf"},
}

func validateFormat(o Output) error {
	allowed := formats[o.Type]
	if o.Format == "" || len(allowed) == 0 {
		return nil
	}
	for _, a := range allowed {
		if o.Format == a {
			return nil
		}
	}
	return fmt.Errorf("%q: a %s output carries %s", o.Format, o.Type, strings.Join(allowed, ", "))
}

// FormatOf returns the output's format, or its type's default.
func FormatOf(o Output) string {
	if o.Format != "" {
		return o.Format
	}
	if f := formats[o.Type]; len(f) > 0 {
		return f[0]
	}
	return "json"
}
