package report

import "html/template"

// css is the page's only style sheet. System fonts only: nothing is loaded.
const css = `
*{box-sizing:border-box}
body{margin:0;background:#f3f4f7;color:#1d2330;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif}
header{background:#1d2a44;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#c5cde0}
nav{margin-top:8px}
nav a{color:#9fc1ff;margin-right:16px;text-decoration:none}
nav.index{display:flex;flex-wrap:wrap;gap:2px 0;font-size:13px}
nav.index span{color:#c5cde0;margin-right:10px}
h2 a.up{font-size:13px;color:#98a2b3;text-decoration:none;margin-left:6px}
main{max-width:1180px;margin:0 auto;padding:8px 20px 40px}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:14px 18px;margin:16px 0}
.cols{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #edf0f4;text-align:right;vertical-align:top}
th{font-weight:600;color:#4a5365;background:#f7f8fa}
th:first-child,td:first-child{text-align:left}
table.kv th{background:none;text-align:left}
table.kv td{text-align:left}
td.l,th.l{text-align:left}
td.t{white-space:nowrap}
td.msg{text-align:left;color:#4a5365;max-width:460px}
tr.overall td{font-weight:600}
code{font:12px/1.4 ui-monospace,"Liberation Mono",Menlo,Consolas,monospace}
pre{font:12px/1.35 ui-monospace,"Liberation Mono",Menlo,Consolas,monospace;background:#f7f8fa;border:1px solid #e3e6eb;padding:10px;overflow:auto}
.note{color:#6a4b00;background:#fff6dc;border:1px solid #f1dc9c;border-radius:4px;padding:6px 10px}
.muted{color:#667085}
.meta span+span:before{content:" · ";color:#98a2b3}
figure{margin:10px 0 4px}
figcaption{font-size:13px;color:#4a5365;margin-bottom:2px}
figcaption b{color:#1d2330}
figure svg{display:block;width:100%;height:auto;border:1px solid #edf0f4}
figure svg text{font-family:"Liberation Sans",Arial,Helvetica,sans-serif !important}
.legend{display:flex;flex-wrap:wrap;gap:18px;font-size:13px;color:#4a5365}
.sw{display:inline-block;width:22px;height:11px;vertical-align:-1px;margin-right:6px;border:1px solid transparent}
.sw.signal{height:0;border:0;border-top:2px solid #1f4e9c;vertical-align:3px}
.sw.band{background:rgba(46,160,100,.22)}
.sw.mean{height:0;border:0;border-top:2px dashed #1e7a4a;vertical-align:3px}
.sw.warning{background:rgba(245,166,35,.3);border-left:2px solid #d98a00}
.sw.critical{background:rgba(214,39,40,.25);border-left:2px solid #b01e1e}
.sw.label{background:repeating-linear-gradient(45deg,rgba(128,64,192,.25) 0 2px,#6a2ca8 2px 3px)}
.sev{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px}
.sev.warning{background:#fdebc8;color:#7a4d00}
.sev.critical{background:#f9d2d2;color:#8a1212}
details summary{cursor:pointer;color:#2a4b8d}
footer{color:#98a2b3;font-size:12px;margin-top:24px}
`

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>{{.CSS}}</style>
</head>
<body>
<header id="top">
<h1>{{.Title}}</h1>
{{with .Subtitle}}<p>{{.}}</p>{{end}}
<nav><a href="#summary">Summary</a>{{if .Config}}<a href="#configuration">Configuration</a>{{end}}{{if .Eval}}<a href="#evaluation">Evaluation</a>{{end}}{{if .Devices}}<a href="#devices">Devices</a>{{end}}</nav>
{{if .Devices}}<nav class="index" id="device-index"><span>Devices:</span>{{range .Devices}}<a href="#{{.ID}}">{{.Name}}</a>{{end}}</nav>{{end}}
</header>
<main>
<section class="card" id="summary">
<h2>Summary</h2>
<div class="cols">
<table class="kv">
<tr><th>Input</th><td>{{range $i, $f := .Files}}{{if $i}}<br>{{end}}<code>{{$f}}</code>{{else}}<span class="muted">none listed</span>{{end}}</td></tr>
{{range .Summary}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
<table id="rejections">
<tr><th>Rejected: reason</th><th>messages</th></tr>
{{range .Rejections}}<tr><td>{{.Key}}</td><td>{{.Value}}</td></tr>
{{else}}<tr><td colspan="2" class="muted">no rejections</td></tr>
{{end}}</table>
<table id="alerts">
<tr><th>Alerts: kind</th><th>firing</th><th>resolved</th></tr>
{{range .Alerts}}<tr><td>{{.Kind}}</td><td>{{.Firing}}</td><td>{{.Resolved}}</td></tr>
{{else}}<tr><td colspan="3" class="muted">no alerts</td></tr>
{{end}}</table>
</div>
</section>
{{with .Config}}
<section class="card" id="configuration">
<h2>Configuration</h2>
<table class="kv">
{{range .}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
</section>
{{end}}
{{with .Eval}}
<section class="card" id="evaluation">
<h2>Evaluation against the labels</h2>
{{range .Notes}}<p class="muted">{{.}}</p>{{end}}
<h3>Event level: label windows and alert episodes</h3>
<table id="eval-events">
<tr><th>scope</th><th>windows</th><th>detected</th><th>missed</th><th>episodes</th><th>true pos.</th><th>false pos.</th><th>recall</th><th>precision</th><th>F1</th><th>delay p50</th><th>delay p90</th><th>false alarms / device-h</th></tr>
{{range $i, $r := .Events}}<tr{{if not $i}} class="overall"{{end}}><td>{{$r.Scope}}</td><td>{{$r.Windows}}</td><td>{{$r.Detected}}</td><td>{{$r.Missed}}</td><td>{{$r.Episodes}}</td><td>{{$r.TP}}</td><td>{{$r.FP}}</td><td>{{$r.Recall}}</td><td>{{$r.Precision}}</td><td>{{$r.F1}}</td><td>{{$r.DelayP50}}</td><td>{{$r.DelayP90}}</td><td>{{$r.FARate}}</td></tr>
{{end}}</table>
<div class="cols">
<div><h3>Point-wise (every reading)</h3>
<table class="kv" id="eval-points">{{range .Points}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>{{end}}</table></div>
<div><h3>NAB score</h3>
<table class="kv" id="eval-nab">{{range .NAB}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>{{end}}</table></div>
</div>
<details><summary>The evaluation as text</summary>
<pre>{{.Text}}</pre>
</details>
</section>
{{end}}
{{if .Devices}}
<section class="card" id="devices">
<h2>Devices</h2>
{{with .DeviceNote}}<p class="note">{{.}}</p>{{end}}
<table>
<tr><th>device</th><th class="l">signals</th><th>readings</th><th>warning episodes</th><th>critical episodes</th>{{if .HasLabels}}<th>label windows</th>{{end}}{{if .HasEval}}<th>recall</th><th>precision</th><th>false pos.</th>{{end}}</tr>
{{range .Overview}}<tr><td><a href="#{{.ID}}">{{.Name}}</a></td><td class="l">{{.Signals}}</td><td>{{.Readings}}</td><td>{{.Warning}}</td><td>{{.Critical}}</td>{{if $.HasLabels}}<td>{{.Windows}}</td>{{end}}{{if $.HasEval}}<td>{{.Recall}}</td><td>{{.Precision}}</td><td>{{.FP}}</td>{{end}}</tr>
{{end}}</table>
<h3>How to read the charts</h3>
<div class="legend">
<span><span class="sw signal"></span>signal (each pixel column spans its min and max)</span>
<span><span class="sw band"></span>learned band: median ± {{.Z}}·spread</span>
<span><span class="sw mean"></span>EW mean</span>
<span><span class="sw warning"></span>warning episode (firing → resolved)</span>
<span><span class="sw critical"></span>critical episode</span>
<span><span class="sw label"></span>label window, on the chart of the signal its kind concerns (overpressure: pressure, thermal: temperature, vibration: vibration, signal: generic signals); status, traffic and unlabelled windows on every chart</span>
</div>
</section>
{{range .Devices}}
<section class="card device" id="{{.ID}}">
<h2>{{.Name}} <a class="up" href="#top" title="back to the device index">↑</a></h2>
<p class="meta muted">{{range .Meta}}<span>{{.}}</span>{{end}}</p>
{{with .Eval}}<p class="muted">Evaluation: {{.}}</p>{{end}}
{{range .Charts}}<figure data-signal-kind="{{.Kind}}">
<figcaption><b>{{.Signal}}</b> <span class="muted">{{.Caption}}</span></figcaption>
{{.SVG}}
</figure>
{{end}}
{{if .Episodes}}<h3>Alert episodes</h3>
<table class="episodes">
<tr><th>firing at (UTC)</th><th>duration</th><th class="l">severity</th><th class="l">detector</th><th class="l">signal</th><th>peak score</th><th class="l">message</th></tr>
{{range .Episodes}}<tr><td class="t">{{.Start}}</td><td class="t">{{.Duration}}</td><td class="l"><span class="sev {{.Severity}}">{{.Severity}}</span></td><td class="l">{{.Detector}}</td><td class="l">{{.Signal}}</td><td>{{.Score}}</td><td class="msg">{{.Message}}</td></tr>
{{end}}</table>
{{if .More}}<p class="muted">and {{.More}} more episodes (all are in the alerts file).</p>{{end}}
{{end}}
{{if .Windows}}<h3>Label windows</h3>
<table class="windows">
<tr><th>start (UTC)</th><th>duration</th><th class="l">kind</th><th class="l">detail</th></tr>
{{range .Windows}}<tr><td class="t">{{.Start}}</td><td class="t">{{.Duration}}</td><td class="l">{{.Kind}}</td><td class="l">{{.Detail}}</td></tr>
{{end}}</table>
{{end}}
</section>
{{end}}
{{end}}
<footer>Written by vigil replay. Self-contained: no scripts, nothing loaded from the network.</footer>
</main>
</body>
</html>
`))
