package broker

import (
	"fmt"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Server is what the broker of the current connection says about itself
// when the connection opens, and what the two sides agreed on.
type Server struct {
	// Product is the server's product name ("RabbitMQ").
	Product string
	// Version is the server's version string ("3.10.8").
	Version string
	// Platform is the runtime it runs on ("Erlang/OTP 25.2.1").
	Platform string
	// Capabilities are the protocol extensions the server announces
	// (publisher_confirms, connection.blocked, ...).
	Capabilities map[string]bool
	// FrameMax is the negotiated largest frame in bytes: the smaller of the
	// server's frame_max and the client's (131,072).
	FrameMax int
	// ChannelMax is the negotiated largest channel number.
	ChannelMax int
}

// Server returns what the broker of the current connection announced, or
// ErrNotConnected while the Conn reconnects. After a reconnect it may
// describe another node of the cluster.
func (c *Conn) Server() (Server, error) {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur == nil || cur.IsClosed() {
		return Server{}, ErrNotConnected
	}
	s := Server{
		Product:      HeaderString(cur.Properties, "product"),
		Version:      HeaderString(cur.Properties, "version"),
		Platform:     HeaderString(cur.Properties, "platform"),
		Capabilities: map[string]bool{},
		FrameMax:     cur.Config.FrameSize,
		ChannelMax:   int(cur.Config.ChannelMax),
	}
	if caps, ok := cur.Properties["capabilities"].(amqp.Table); ok {
		for k, v := range caps {
			if b, ok := v.(bool); ok {
				s.Capabilities[k] = b
			}
		}
	}
	return s, nil
}

// Version is a RabbitMQ release number.
type Version struct {
	Major, Minor, Patch int
}

// ParseVersion reads "3.10.8", "4.0.0-rc.1" or "3.13.7+2.g1234" (the
// suffix after the patch number is ignored). A missing patch is 0.
func ParseVersion(s string) (Version, error) {
	core := s
	if i := strings.IndexAny(core, "-+ "); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("broker: version %q: want MAJOR.MINOR.PATCH", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("broker: version %q: want MAJOR.MINOR.PATCH", s)
		}
		n[i] = v
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2]}, nil
}

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// String is "MAJOR.MINOR.PATCH".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }
