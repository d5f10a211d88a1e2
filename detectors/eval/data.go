package eval

import "slices"

// DataInfo describes the data the alerts came from: per device, the event
// times of its readings (Unix nanoseconds), one per reading, in ascending
// order. Eight bytes a reading: a million readings take 8 MB. The devices in
// Times are the devices evaluated; labels and alerts of other devices are
// ignored (and reported).
//
// Times need not be sorted: Evaluate sorts a copy of a device's times when
// they are not, which costs time and memory, so feed readings in event-time
// order per device (as a replay does) when the data is large.
type DataInfo struct {
	Times map[string][]int64
}

// Add records a reading of device at t. It is meant for a caller streaming
// readings; a device's name is kept as given, so pass an interned string.
func (d *DataInfo) Add(device string, t int64) {
	if d.Times == nil {
		d.Times = map[string][]int64{}
	}
	d.Times[device] = append(d.Times[device], t)
}

// Devices returns the devices, sorted.
func (d DataInfo) Devices() []string {
	ds := make([]string, 0, len(d.Times))
	for dev := range d.Times {
		ds = append(ds, dev)
	}
	slices.Sort(ds)
	return ds
}

// Seen returns the set of devices, as Labels.UnknownDevices takes it.
func (d DataInfo) Seen() map[string]bool {
	seen := make(map[string]bool, len(d.Times))
	for dev := range d.Times {
		seen[dev] = true
	}
	return seen
}

// Readings returns the number of readings.
func (d DataInfo) Readings() int {
	n := 0
	for _, ts := range d.Times {
		n += len(ts)
	}
	return n
}

// sortedTimes returns the times of device in ascending order, without
// modifying d.
func (d DataInfo) sortedTimes(device string) []int64 {
	ts := d.Times[device]
	if slices.IsSorted(ts) {
		return ts
	}
	return slices.Sorted(slices.Values(ts))
}
