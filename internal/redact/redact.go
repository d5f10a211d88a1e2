// Package redact keeps credentials out of error messages and log lines.
//
// A URL written in the configuration or on a command line may carry a
// password (mqtts://vigil:secret@broker:8883), a token in place of the user
// (nats://token@nats:4222) or a token in its query (?token=…), and url.Parse
// puts the whole raw URL into its errors (*url.Error). URL masks those parts
// of any string, whether or not it parses as a URL, and Parse is url.Parse
// whose errors carry only the masked form. Vigil refuses credentials in URLs
// (they belong in the *_file and *_env settings); redaction makes sure that
// the refusal, and every other message that names the URL, does not repeat
// them.
//
// EnvName checks that a *_env setting names an environment variable, so that
// a secret written there by mistake is refused without being echoed.
package redact

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Mask is what replaces a secret: the same as url.URL.Redacted.
const Mask = "xxxxx"

// URL returns raw with its credentials replaced by Mask: the password of
// user:password@ (the user is kept, to say which account), a user given
// without a password (it may be a token, as in nats://token@host), and the
// value of every query parameter. It works on strings url.Parse rejects,
// such as "mqtt://user:p@ss@host:port/%zz", on a host:port without a scheme
// ("user:secret@host:6514") and on comma-separated server lists
// ("nats://u:p@a:4222,nats://u:q@b:4222"). When it cannot tell the user
// information from a path it masks too much rather than too little. A
// string with nothing to mask is returned as it is.
func URL(raw string) string {
	s, _ := mask(raw)
	return s
}

// HasUserinfo reports whether raw carries user information (user@ or
// user:password@ before the host), whether or not it parses as a URL.
func HasUserinfo(raw string) bool {
	if u, ok := parseOne(raw); ok {
		return u.User != nil
	}
	for _, sp := range bodies(raw) {
		if userinfoEnd(raw[sp[0]:sp[1]]) >= 0 {
			return true
		}
	}
	return false
}

// errWithheld replaces a parse error that would quote part of a secret.
var errWithheld = errors.New("malformed (details withheld: they would quote part of the credentials)")

// Parse is url.Parse whose error never carries raw's credentials: it is a
// *url.Error whose URL is URL(raw), and whose cause is withheld when it
// would quote part of them (an invalid escape in the password, say).
func Parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil {
		return u, nil
	}
	op, cause := "parse", err
	var ue *url.Error
	if errors.As(err, &ue) {
		op, cause = ue.Op, ue.Err
	}
	masked, secrets := mask(raw)
	if reveals(cause.Error(), secrets) {
		cause = errWithheld
	}
	return nil, &url.Error{Op: op, URL: masked, Err: cause}
}

// EnvName checks that name can name an environment variable: letters,
// digits and '_', not starting with a digit. Its error does not repeat
// name: a value that fails the check is usually the secret itself, written
// where its variable's name belongs.
func EnvName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return errors.New("not an environment variable name (letters, digits and _; the value itself belongs in the environment, not here)")
		}
	}
	return nil
}

// mask returns raw with its secrets masked, and the secrets. It splices
// raw rather than re-serialising a parsed URL, so what is not masked reads
// as written. For a URL that parses with no '@' but the one ending its user
// information this masks what url.Parse would call the password and the
// query; with another '@', or one url.Parse took for part of a path or a
// fragment ("mqtts://vigil:12#ss@broker"), it masks up to the last '@', as
// the writer of an unescaped password meant.
func mask(raw string) (string, []string) {
	var b strings.Builder
	var secrets []string
	last := 0
	for _, sp := range bodies(raw) {
		b.WriteString(raw[last:sp[0]])
		masked, sec := maskBody(raw[sp[0]:sp[1]])
		b.WriteString(masked)
		secrets = append(secrets, sec...)
		last = sp[1]
	}
	b.WriteString(raw[last:])
	if len(secrets) == 0 {
		return raw, nil
	}
	return b.String(), secrets
}

// parseOne parses raw when it is one URL with an authority
// (scheme://… or //…), the form whose user information url.Parse finds
// where a client would. A list of URLs can parse as one with the second's
// credentials in the path, and a string without a scheme as a path or an
// opaque URL: those are left to the scanner (bodies).
func parseOne(raw string) (*url.URL, bool) {
	if strings.Count(raw, "://") > 1 {
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || (u.Scheme == "" && !strings.HasPrefix(raw, "//")) {
		return nil, false
	}
	return u, true
}

// bodies returns the spans of raw that follow each scheme's "://" (the
// whole string, less a leading "//", when it has none), each up to the
// scheme of the next. A "://" counts only after a scheme that starts the
// string or follows a ',' or a space, so one inside a password does not
// start a new URL.
func bodies(raw string) [][2]int {
	var seps []int // index of each "://" that ends a scheme
	for i := 0; ; {
		j := strings.Index(raw[i:], "://")
		if j < 0 {
			break
		}
		j += i
		if schemeStart(raw, j) >= 0 {
			seps = append(seps, j)
		}
		i = j + 3
	}
	if len(seps) == 0 {
		if strings.HasPrefix(raw, "//") {
			return [][2]int{{2, len(raw)}}
		}
		return [][2]int{{0, len(raw)}}
	}
	out := make([][2]int, 0, len(seps))
	for n, j := range seps {
		end := len(raw)
		if n+1 < len(seps) {
			end = schemeStart(raw, seps[n+1])
		}
		out = append(out, [2]int{j + 3, end})
	}
	return out
}

// schemeStart returns where the scheme ending at raw[j] ("://" at j) starts,
// or -1 when the text before j is not a scheme at the start of the string
// or after a separator.
func schemeStart(raw string, j int) int {
	k := j
	for k > 0 && isSchemeChar(raw[k-1]) {
		k--
	}
	if k == j || !isLetter(raw[k]) {
		return -1
	}
	if k > 0 && raw[k-1] != ',' && raw[k-1] != ' ' {
		return -1
	}
	return k
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isSchemeChar(c byte) bool {
	return isLetter(c) || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

// userinfoEnd returns the index of the '@' that ends body's user
// information, or -1. The last '@' counts, as for url.Parse: a password may
// hold an '@' (and, unescaped, a '/' or a '?'), a host cannot.
func userinfoEnd(body string) int {
	return strings.LastIndexByte(body, '@')
}

// maskBody masks the user information and query of one URL without its
// scheme.
func maskBody(body string) (string, []string) {
	var secrets []string
	var b strings.Builder
	rest := body
	if at := userinfoEnd(body); at >= 0 {
		info := body[:at]
		if user, pw, ok := strings.Cut(info, ":"); ok {
			b.WriteString(user + ":" + Mask)
			secrets = append(secrets, pw)
		} else {
			b.WriteString(Mask)
			secrets = append(secrets, info)
		}
		rest = body[at:]
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		query, frag, hasFrag := strings.Cut(rest[q+1:], "#")
		masked, sec := maskQuery(query)
		secrets = append(secrets, sec...)
		rest = rest[:q+1] + masked
		if hasFrag {
			rest += "#" + frag
		}
	}
	b.WriteString(rest)
	return b.String(), secrets
}

// maskQuery replaces the value of each parameter of a query (a parameter
// without '=' is a value: it is masked whole).
func maskQuery(q string) (string, []string) {
	var secrets []string
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if p == "" {
			continue
		}
		if k, v, ok := strings.Cut(p, "="); ok {
			if v != "" {
				parts[i] = k + "=" + Mask
				secrets = append(secrets, v)
			}
			continue
		}
		parts[i] = Mask
		secrets = append(secrets, p)
	}
	return strings.Join(parts, "&"), secrets
}

// reveals reports whether msg contains a secret, or quotes (as url.Parse's
// errors do, with %q) a part of one.
func reveals(msg string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			return true
		}
	}
	for rest := msg; ; {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			return false
		}
		q, err := strconv.QuotedPrefix(rest[i:])
		if err != nil {
			rest = rest[i+1:]
			continue
		}
		rest = rest[i+len(q):]
		frag, _ := strconv.Unquote(q)
		frag = strings.TrimLeft(frag, ":")
		for _, s := range secrets {
			if frag != "" && strings.Contains(s, frag) {
				return true
			}
		}
	}
}
