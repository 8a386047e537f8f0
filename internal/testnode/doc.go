// Package testnode starts private RabbitMQ nodes for tests and for the
// chaos suite: a node (or a cluster) they can stop, kill, freeze and start
// again, one with a TLS listener, or one whose users, vhosts and
// permissions they change. The shared development broker (127.0.0.1:5672)
// is never touched: a private node has its own ports, data directory, HOME
// and Erlang cookie, and every rabbitmqctl call names it with -n.
//
// Starting a node costs several seconds; share one per test binary with a
// Lazy, closed from TestMain:
//
//	var node = &testnode.Lazy{Options: testnode.Options{TLS: ...}}
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		node.Close()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		n := node.Get(t) // started on first use; skipped (or failed under CI=true) without RabbitMQ
//		...
//	}
//
// A cluster (NewCluster) lives in a directory of the caller's and may run
// each node in a network namespace of its own (ClusterOptions.Net).
//
// A node left running by a test binary that was killed is stopped by the
// next Start (see Sweep).
package testnode
