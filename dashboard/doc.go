// Package dashboard serves Warren's web dashboard and its JSON HTTP API from
// one http.Handler: the queues with their counts and rates, dead letters to
// filter, group, show, replay, purge, export and import, the live worker
// pools, queue pause and resume, and an enqueue form and endpoint.
//
// A Server needs nothing but the broker. It samples the queues on its own,
// hears the workers' heartbeats (package fleet), and keeps pauses on the
// broker, so several instances behind a load balancer share no state but
// RabbitMQ. Sessions and CSRF tokens are signed with a key derived from the
// credentials, so instances with the same credentials file accept each
// other's.
//
//	srv, err := dashboard.New(ctx, conn, dashboard.Config{Auth: token})
//	go srv.Run(ctx)
//	http.ListenAndServe("127.0.0.1:8080", srv)
//
// # Security
//
// CheckListen refuses an address beyond loopback without an Authenticator
// (Token or Basic). Every mutating request passes net/http's
// CrossOriginProtection and, when it rides on a browser cookie, must carry
// the page's CSRF token in the X-CSRF-Token header. Config.ReadOnly refuses
// every mutating request with 403 read_only. Each mutating action writes
// one audit line to Config.Audit.
//
// # Errors
//
// Every API error is JSON, {"error": {"code": ..., "message": ...}}, with a
// stable code (the Code constants).
package dashboard
