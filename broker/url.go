package broker

// ValidateURL checks rawURL as Dial reads it (one amqp:// or amqps:// URL,
// or a comma-separated list of a cluster's) without connecting, so that a
// caller can tell bad input from an unreachable broker. Its errors never
// contain a password.
func ValidateURL(rawURL string) error {
	_, err := parseURLs(rawURL)
	return err
}
