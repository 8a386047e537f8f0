package dashboard

// apiRoutes registers the JSON API under /api/v1 (see openapi.json).
func (s *Server) apiRoutes() {
}
