package redact

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"nothing to mask", "mqtts://broker.plant:8883", "mqtts://broker.plant:8883"},
		{"empty", "", ""},
		{"host:port", "siem.plant:6514", "siem.plant:6514"},
		{"password", "mqtts://vigil:s3cret@broker:8883", "mqtts://vigil:xxxxx@broker:8883"},
		{"user alone may be a token", "nats://s3cret@nats:4222", "nats://xxxxx@nats:4222"},
		{"empty password", "mqtt://vigil:@h:1883", "mqtt://vigil:xxxxx@h:1883"},
		{"query values", "https://hooks.plant/x?token=s3cret&a=1&flag", "https://hooks.plant/x?token=xxxxx&a=xxxxx&xxxxx"},
		// An '@' after the host is masked up to, as a password with an
		// unescaped '#' or '/' would be: too much rather than too little.
		{"at sign in a path", "https://es.plant:9200/a@b", "https://es.plant:xxxxx@b"},
		{"hash in password", "mqtts://vigil:12#ss@broker:8883", "mqtts://vigil:xxxxx@broker:8883"},
		// url.Parse rejects the strings below: they go through the scanner.
		{"bad port", "mqtts://user:s3cret@host:port", "mqtts://user:xxxxx@host:port"},
		{"at sign in password, bad escape", "mqtt://user:p@ss@host:port/%zz", "mqtt://user:xxxxx@host:port/%zz"},
		{"slash in password", "mqtt://user:pa/ss@host:1883", "mqtt://user:xxxxx@host:1883"},
		{"question mark in password", "mqtt://user:pa?ss@host:port", "mqtt://user:xxxxx@host:port"},
		{"escape in password", "mqtt://user:p%zz@host", "mqtt://user:xxxxx@host"},
		{"no scheme", "user:s3cret@host:8883", "user:xxxxx@host:8883"},
		{"no scheme, slashes", "//user:s3cret@host:8883", "//user:xxxxx@host:8883"},
		{"scheme inside the password", "user:p://x@host", "user:xxxxx@host"},
		{"server list", "nats://u:p1@a:4222,nats://u:p2@b:4222", "nats://u:xxxxx@a:4222,nats://u:xxxxx@b:4222"},
		{"server list, second with credentials", "nats://a:4222,nats://u:p2@b:4222", "nats://a:4222,nats://u:xxxxx@b:4222"},
		{"query in an unparseable URL", "mqtt://host:port/?password=s3cret#frag", "mqtt://host:port/?password=xxxxx#frag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := URL(tc.in); got != tc.want {
				t.Errorf("URL(%q) = %q; want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestHasUserinfo(t *testing.T) {
	for in, want := range map[string]bool{
		"mqtts://broker:8883":              false,
		"https://es:9200/a@b":              false,
		"siem:6514":                        false,
		"mqtts://u:p@broker:8883":          true,
		"nats://token@nats:4222":           true,
		"mqtt://user:p@ss@host:port/%zz":   true,
		"user:s3cret@host:6514":            true,
		"nats://a:4222,nats://u:p@b:4222":  true,
		"mqtt://user:pa/ss@host:port/path": true,
		"mqtts://vigil:12#ss@broker:8883":  false, // a fragment to url.Parse and every client; URL still masks it
	} {
		if got := HasUserinfo(in); got != want {
			t.Errorf("HasUserinfo(%q) = %v; want %v", in, got, want)
		}
	}
}

// TestParse: url.Parse puts the raw URL in its error; Parse must not, and
// must withhold a cause that quotes part of the password.
func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, secret, want string }{
		{"mqtts://user:s3cret@host:port", "s3cret", `parse "mqtts://user:xxxxx@host:port": invalid port ":port" after host`},
		{"mqtt://user:p@ss@host:port/%zz", "p@ss", `parse "mqtt://user:xxxxx@host:port/%zz": invalid port ":port" after host`},
		{"mqtt://user:pa%zzss@host", "pa%zzss", `parse "mqtt://user:xxxxx@host": ` + errWithheld.Error()},
		{"mqtt://user:pass word@host", "pass word", `parse "mqtt://user:xxxxx@host": net/url: invalid userinfo`},
		{"mqtt://user:pa/ss@host:1883", "pa/ss", `parse "mqtt://user:xxxxx@host:1883": ` + errWithheld.Error()},
		{"https://host:80/%zz?token=s3cret", "s3cret", `parse "https://host:80/%zz?token=xxxxx": invalid URL escape "%zz"`},
		{"user:s3cret@host:8883/x\x7f", "s3cret", `parse "user:xxxxx@host:8883/x\x7f": net/url: invalid control character in URL`},
	} {
		_, stdErr := url.Parse(tc.in)
		if stdErr == nil {
			t.Fatalf("url.Parse(%q) succeeded; the case needs a URL it rejects", tc.in)
		}
		_, err := Parse(tc.in)
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", tc.in)
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("Parse(%q) error %q repeats the secret %q", tc.in, err, tc.secret)
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q) error %q; want %q", tc.in, err, tc.want)
		}
		var ue *url.Error
		if !errors.As(err, &ue) || strings.Contains(ue.URL, tc.secret) {
			t.Errorf("Parse(%q): errors.As finds %+v; want a *url.Error with the masked URL", tc.in, ue)
		}
	}
	if u, err := Parse("mqtts://u:p@h:8883"); err != nil || u.User.Username() != "u" {
		t.Errorf("Parse of a valid URL: %v, %v; want it parsed as url.Parse does", u, err)
	}
}

func TestEnvName(t *testing.T) {
	for _, ok := range []string{"VIGIL_MQTT_PASSWORD", "_x", "a1"} {
		if err := EnvName(ok); err != nil {
			t.Errorf("EnvName(%q) = %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "1ABC", "s3cr3t!pw", "hunter=2", "AGE-SECRET-KEY-1QQQ", "a b"} {
		err := EnvName(bad)
		if err == nil {
			t.Errorf("EnvName(%q) = nil; want an error", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("EnvName(%q) = %q repeats the value", bad, err)
		}
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"mqtts://u:p@h:8883", "mqtt://user:p@ss@host:port/%zz", "nats://a,nats://u:p@b", "u:p@h", "https://h/?t=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			return
		}
		pw, ok := u.User.Password()
		if !ok || len(pw) < 4 || strings.Count(raw, pw) != 1 {
			return
		}
		if got := URL(raw); strings.Contains(got, pw) {
			t.Errorf("URL(%q) = %q keeps the password %q", raw, got, pw)
		}
		if _, err := Parse(raw); err != nil {
			t.Errorf("Parse(%q): %v; url.Parse accepted it", raw, err)
		}
	})
}

// FuzzCredentials builds scheme://user:password@host… from parts, so most
// inputs do not parse, and checks the password survives neither URL nor
// Parse's error.
func FuzzCredentials(f *testing.F) {
	f.Add("mqtt", "user", "p@ss", "host:port/%zz")
	f.Add("nats", "u", "pa/ss?x", "h:4222,nats://v:w@h2")
	f.Add("", "u", "s3cret", "siem:6514")
	f.Fuzz(func(t *testing.T, scheme, user, pw, rest string) {
		// A ',' or ' ' before "scheme://" in the password reads as a server
		// list; an '@' in the host is no host; an 'x' could come from Mask.
		if len(pw) < 4 || strings.ContainsAny(pw, ", x") || strings.ContainsAny(user, ":@/, ") || strings.Contains(rest, "@") {
			return
		}
		raw := user + ":" + pw + "@" + rest
		if scheme != "" {
			raw = scheme + "://" + raw
		}
		if strings.Count(raw, pw) != 1 {
			return
		}
		// The masked text may hold pw by coincidence: no more often than
		// raw with pw masked does.
		coincidence := strings.Count(strings.Replace(raw, pw, Mask, 1), pw)
		if got := URL(raw); strings.Count(got, pw) > coincidence {
			t.Errorf("URL(%q) = %q keeps the password %q", raw, got, pw)
		}
		_, err := Parse(raw)
		var ue *url.Error
		if err != nil && (!errors.As(err, &ue) || strings.Count(ue.URL, pw) > coincidence || strings.Contains(ue.Err.Error(), pw)) {
			t.Errorf("Parse(%q) error %q keeps the password %q", raw, err, pw)
		}
	})
}
