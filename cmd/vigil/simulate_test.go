package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestSimulateBrokerCredentials: a --broker URL with a password, parsable
// or not, is refused as a usage error that shows it masked; neither the
// error nor a log line repeats the password.
func TestSimulateBrokerCredentials(t *testing.T) {
	const secret = "s3cret-pw"
	for _, tc := range []struct{ url, want string }{
		{"mqtt://vigil:p@" + secret + "@127.0.0.1:port/%zz", `--broker: credentials must not be part of the URL ("mqtt://vigil:xxxxx@127.0.0.1:port/%zz")`},
		{"mqtts://vigil:" + secret + "@127.0.0.1:1", `--broker: credentials must not be part of the URL ("mqtts://vigil:xxxxx@127.0.0.1:1")`},
		{"vigil:" + secret + "@127.0.0.1:1883", `--broker: credentials must not be part of the URL ("vigil:xxxxx@127.0.0.1:1883")`},
	} {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(&errb, nil))}
		code := run(context.Background(), []string{"simulate", "--broker", tc.url}, e)
		if code != 2 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "password_file or password_env") {
			t.Errorf("--broker %q: exit %d, stderr %q; want exit 2 and %q, pointing to password_file or password_env", tc.url, code, errb.String(), tc.want)
		}
		if strings.Contains(errb.String()+out.String(), secret) {
			t.Errorf("--broker %q: the output repeats the password:\n%s%s", tc.url, out.String(), errb.String())
		}
	}
}
