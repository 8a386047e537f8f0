//go:build integration

package broker_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestAccessErrorsAtDial: the broker's refusals at connect come back as
// *broker.AccessError saying what was refused, without the password.
func TestAccessErrorsAtDial(t *testing.T) {
	base, err := url.Parse(testbroker.URL())
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	vhost := "no-such-vhost-" + hex.EncodeToString(b[:])

	missing := *base
	missing.Path = "/" + vhost
	badPassword := *base
	badPassword.User = url.UserPassword(base.User.Username(), "wrong-"+hex.EncodeToString(b[:]))

	for _, c := range []struct {
		name  string
		url   string
		want  broker.Refusal
		vhost string
	}{
		{"missing vhost", missing.String(), broker.VHostNotFound, vhost},
		{"bad password", badPassword.String(), broker.RefusedLogin, ""},
	} {
		ctx := testbroker.Context(t, 30*time.Second)
		conn, err := broker.Dial(ctx, c.url, broker.Config{DialRetries: 1, NoReconnect: true})
		if err == nil {
			_ = conn.Close()
			t.Errorf("%s: connected", c.name)
			continue
		}
		ac := broker.AccessOf(err)
		if ac == nil || ac.Refused != c.want || ac.VHost != c.vhost || !errors.Is(err, broker.ErrAccessRefused) {
			t.Errorf("%s: %v: AccessOf = %+v, want refusal %d, vhost %q", c.name, err, ac, c.want, c.vhost)
		}
		if strings.Contains(err.Error(), "wrong-") {
			t.Errorf("%s: the password leaked: %v", c.name, err)
		}
	}
}
