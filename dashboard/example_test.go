package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/dashboard"
)

// Serve the dashboard in a program of your own, behind a bearer token,
// as `warren dashboard --listen :8080 --token-file F` does. (It needs a
// running RabbitMQ, so it is compiled but not run.)
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	conn, err := broker.Dial(ctx, broker.DefaultURL, broker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	token, err := dashboard.LoadToken("/run/secrets/dashboard-token")
	if err != nil {
		log.Fatal(err)
	}
	addr := ":8080"
	if err := dashboard.CheckListen(addr, token); err != nil {
		log.Fatal(err)
	}
	srv, err := dashboard.New(ctx, conn, dashboard.Config{Queues: []string{"emails"}, Auth: token})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close(context.Background())
	go func() { _ = srv.Run(ctx) }()
	hs := &http.Server{Addr: addr, Handler: srv}
	go func() { <-ctx.Done(); _ = hs.Shutdown(context.Background()) }()
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// A dashboard without authentication may only listen on loopback.
func ExampleCheckListen() {
	fmt.Println(dashboard.CheckListen("127.0.0.1:8080", nil))
	fmt.Println(errors.Is(dashboard.CheckListen(":8080", nil), dashboard.ErrNeedsAuth))
	// Output:
	// <nil>
	// true
}
