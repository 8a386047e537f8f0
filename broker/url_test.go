package broker

import (
	"errors"
	"strings"
	"testing"
)

func TestURLSecrets(t *testing.T) {
	s := URLSecrets("amqp://user:p%40ss%2Fword@host:5672/")
	got := s.Redact("failed: amqp://user:p%40ss%2Fword@host and p@ss/word")
	if strings.Contains(got, "p@ss/word") || strings.Contains(got, "p%40ss%2Fword") {
		t.Fatalf("Redact left the password: %q", got)
	}
	if got := URLSecrets("amqp://u:one@h1/,amqp://u:two@h2/"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("cluster URL secrets: %q", got)
	}
	if URLSecrets("amqp://host/") != nil || URLSecrets("::bad") != nil || URLSecrets("amqp://u:@h/") != nil {
		t.Fatal("secrets found where there are none")
	}
}

func TestRedactError(t *testing.T) {
	s := URLSecrets("amqp://u:hunter2@h/")
	cause := errors.New("dial amqp://u:hunter2@h/: refused")
	err := s.RedactError(cause)
	if strings.Contains(err.Error(), "hunter2") || !errors.Is(err, cause) {
		t.Fatalf("RedactError = %v (cause kept: %v)", err, errors.Is(err, cause))
	}
	clean := errors.New("nothing secret")
	if s.RedactError(clean) != clean || s.RedactError(nil) != nil || Secrets(nil).RedactError(cause) != cause {
		t.Fatal("RedactError changed an error without a secret")
	}
}
