package output

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecret: a credential comes from a file or a variable; no error
// repeats it, even when it was written where the variable's name belongs.
func TestSecret(t *testing.T) {
	const secret = "4f1c-token-9e2b"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(secret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := Secret("token", file, ""); err != nil || string(b) != secret {
		t.Errorf("from a file: got %q, %v; want the value without its line ending", b, err)
	}
	t.Setenv("VIGIL_TEST_TOKEN", secret)
	if b, err := Secret("token", "", "VIGIL_TEST_TOKEN"); err != nil || string(b) != secret {
		t.Errorf("from the environment: got %q, %v", b, err)
	}
	_, err := Secret("token", "", "VIGIL_TEST_UNSET")
	if err == nil || !strings.Contains(err.Error(), "token_env: environment variable VIGIL_TEST_UNSET is not set") {
		t.Errorf("unset variable: got %v; want it named", err)
	}
	_, err = Secret("token", "", secret)
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "token_env: not an environment variable name") {
		t.Errorf("the token itself in token_env: got %v; want it refused without repeating it", err)
	}
}
