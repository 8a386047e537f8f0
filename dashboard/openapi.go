package dashboard

import _ "embed"

// openapiJSON is the OpenAPI 3.1 description of the JSON API, served at
// GET /api/v1/openapi.json.
//
//go:embed openapi.json
var openapiJSON []byte
