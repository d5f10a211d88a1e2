module github.com/vigil-iot/vigil

go 1.25

require (
	github.com/VictoriaMetrics/metrics v1.35.1 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/sys v0.15.0 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
)
