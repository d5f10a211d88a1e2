package format

import (
	"strconv"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Field length limits of the CEF Implementation Standard (header field
// definitions and the ArcSight extension dictionary, document revision 27,
// as reproduced in tenzir/skills skills/tenzir-cef/{docs/overview.md,
// extensions.yaml}; the same header sizes in qisecurity.se's copy). The
// standard counts characters; Vigil counts UTF-8 bytes, which is never more,
// so a value that fits here fits there.
const (
	cefMaxVendor    = 63   // header Device Vendor
	cefMaxProduct   = 63   // header Device Product
	cefMaxVersion   = 31   // header Device Version
	cefMaxClassID   = 1023 // header Device Event Class ID (Signature ID)
	cefMaxName      = 512  // header Name
	cefMaxAct       = 63   // act (deviceAction)
	cefMaxCat       = 1023 // cat (deviceEventCategory)
	cefMaxDvchost   = 100  // dvchost (deviceHostName)
	cefMaxDeviceExt = 255  // deviceExternalId
	cefMaxExtID     = 40   // externalId
	cefMaxMsg       = 1023 // msg
	cefMaxCustom    = 4000 // cs1..cs6 (deviceCustomString1..6)
)

// cefExtEscaper escapes an extension value: backslash, equals sign, CR (\r)
// and LF (\n). A pipe needs no escape in the extension.
var cefExtEscaper = func() *escaper {
	e := &escaper{wide: -1}
	e.tab['\\'] = `\\`
	e.tab['='] = `\=`
	e.tab['\r'] = `\r`
	e.tab['\n'] = `\n`
	return e
}()

// CEF renders an alert as an ArcSight Common Event Format (CEF:0) event:
//
//	CEF:0|Vigil|Vigil|0.4.0|overpressure.spike|overpressure.spike on pressure|9|rt=… act=firing
//
// See the package documentation for the key mapping. Create one with NewCEF.
type CEF struct {
	prefix  []byte // "CEF:0|Vendor|Product|Version|", escaped and cut
	dvchost []byte // "dvchost=host ", or empty
}

// NewCEF returns a CEF formatter that names Vigil with m.
func NewCEF(m output.Meta) *CEF {
	m = withDefaults(m)
	f := &CEF{}
	p := append([]byte(nil), "CEF:0|"...)
	p = headerEscaper.append(p, m.Vendor, cefMaxVendor)
	p = append(p, '|')
	p = headerEscaper.append(p, m.Product, cefMaxProduct)
	p = append(p, '|')
	p = headerEscaper.append(p, m.Version, cefMaxVersion)
	f.prefix = append(p, '|')
	if m.Hostname != "" {
		h := append([]byte(nil), "dvchost="...)
		h = cefExtEscaper.append(h, m.Hostname, cefMaxDvchost)
		f.dvchost = append(h, ' ')
	}
	return f
}

// Append implements output.Formatter.
func (f *CEF) Append(dst []byte, a *pipeline.Alert) []byte {
	dst = append(dst, f.prefix...)
	dst = headerEscaper.append(dst, ruleName(a), cefMaxClassID)
	dst = append(dst, '|')
	// Name: the title, cut as a whole to its limit.
	dst, n := headerEscaper.appendN(dst, ruleName(a), cefMaxName)
	if a.Signal != "" && n+len(" on ") <= cefMaxName {
		dst = append(dst, " on "...)
		dst = headerEscaper.append(dst, a.Signal, cefMaxName-n-len(" on "))
	}
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(severity10(a)), 10)
	dst = append(dst, '|')

	dst = append(dst, "rt="...)
	dst = strconv.AppendInt(dst, epochMillis(a.Time), 10)
	dst = append(dst, " start="...)
	dst = strconv.AppendInt(dst, epochMillis(a.Started), 10)
	if a.State == pipeline.Resolved {
		dst = append(dst, " end="...)
		dst = strconv.AppendInt(dst, epochMillis(a.Time), 10)
	}
	dst = append(dst, ' ')
	dst = cefPair(dst, "externalId", a.ID, cefMaxExtID)
	dst = cefPair(dst, "deviceExternalId", a.Device, cefMaxDeviceExt)
	dst = append(dst, f.dvchost...)
	dst = cefPair(dst, "cat", a.Kind, cefMaxCat)
	dst = cefPair(dst, "msg", a.Message, cefMaxMsg)
	dst = cefLabelled(dst, "cs1", "signal", a.Signal)
	dst = cefLabelled(dst, "cs2", "detector", a.Detector)
	dst = cefLabelled(dst, "cs3", "topic", a.Topic)
	dst = cefLabelled(dst, "cs4", "unit", a.Unit)
	dst = append(dst, "cs5Label=eventId cs5="...)
	dst = appendEventID(dst, a, cefExtEscaper, cefMaxCustom)
	dst = append(dst, ' ')
	if finite(a.Observed) {
		dst = append(dst, "cs6Label=observed cs6="...)
		dst = appendNumber(dst, a.Observed)
		dst = append(dst, ' ')
	}
	dst = cefFloat(dst, "cfp1", "value", a.Value)
	dst = cefFloat(dst, "cfp2", "threshold", a.Threshold)
	dst = cefFloat(dst, "cfp3", "baselineMean", a.Mean)
	dst = cefFloat(dst, "cfp4", "score", a.Score)
	// act comes last: trailing spaces of the last value are not preserved,
	// and act is always one of three fixed words.
	dst = append(dst, "act="...)
	return cefExtEscaper.append(dst, action(a), cefMaxAct)
}

// cefPair appends "key=value " unless value is empty.
func cefPair(dst []byte, key, value string, limit int) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = cefExtEscaper.append(dst, value, limit)
	return append(dst, ' ')
}

// cefLabelled appends a custom string with its label, unless value is empty.
func cefLabelled(dst []byte, key, label, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, key...)
	dst = append(dst, "Label="...)
	dst = append(dst, label...)
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = cefExtEscaper.append(dst, value, cefMaxCustom)
	return append(dst, ' ')
}

// cefFloat appends a custom floating-point field with its label, unless v is
// NaN or ±Inf.
func cefFloat(dst []byte, key, label string, v float64) []byte {
	if !finite(v) {
		return dst
	}
	dst = append(dst, key...)
	dst = append(dst, "Label="...)
	dst = append(dst, label...)
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = appendNumber(dst, v)
	return append(dst, ' ')
}
