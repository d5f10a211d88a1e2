// Package deploy holds what it takes to run Vigil at a plant, and tests that
// check it against the real tools rather than by eye:
//
//	systemd/     vigil.service (hardened, credentials, reload) and its vigil.yaml
//	container/   Containerfile: a static, non-root image with a health check
//	compose/     Mosquitto (TLS, passwords, ACL), Vigil, a simulated plant,
//	             Prometheus and Grafana, and the script that makes their dev PKI
//	grafana/     the Vigil dashboard, ready for provisioning
//	prometheus/  alerting rules for Vigil itself and for the JetStream
//	             scale-out (workers and bridge), their unit tests, and the
//	             recording rules that give Vigil's histograms Prometheus buckets
//
// The package has no code of its own. Its tests build cmd/vigil and run
// systemd-analyze verify and security on the unit, vigil config check on
// every configuration, the compose stack's Mosquitto configuration with the
// PKI its script makes, vigil run against it (every metric the dashboard and
// the rules name must be in its /metrics), and promtool check and test on
// the rules. A test whose tool is missing is skipped, or fails when the
// environment variable CI is "true". docs/DEPLOY.md walks through it all.
package deploy
