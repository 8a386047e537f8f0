package broker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A broker that accepts the connection and never answers: Dial gives up
// with the context, and says so once, not "context deadline exceeded"
// twice.
func TestDialTimeoutSaysSoOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	defer func() {
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, "amqp://u:pw@"+ln.Addr().String()+"/", Config{DialTimeout: time.Second, DialRetries: 3})
	if err == nil {
		t.Fatal("Dial succeeded against a silent listener")
	}
	if n := strings.Count(err.Error(), "context deadline exceeded"); n != 1 {
		t.Errorf("the error says %q %d times: %s", "context deadline exceeded", n, err)
	}
}

func TestValidateURL(t *testing.T) {
	for _, ok := range []string{"amqp://localhost", "amqps://u:p@h:5671/v", "amqp://a,amqp://b"} {
		if err := ValidateURL(ok); err != nil {
			t.Errorf("ValidateURL(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "http://localhost/", "localhost:5672", "amqp://", "amqp://u:s3cret@h:notaport/"} {
		err := ValidateURL(bad)
		if err == nil {
			t.Errorf("ValidateURL(%q) = nil", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ValidateURL(%q) shows the password: %v", bad, err)
		}
	}
}
