// Package tasks holds the task types that the example producer and worker
// share: a Go type per JSON payload and the task type name it travels under.
package tasks

import (
	"cmp"
	"os"
)

// Task type names (the AMQP type property).
const (
	TypeEmailSend     = "email:send"
	TypeReportBuild   = "report:build"
	TypeThumbnailMake = "thumbnail:make"
)

// EmailSend is the payload of an email:send task.
type EmailSend struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// ReportBuild is the payload of a report:build task.
type ReportBuild struct {
	Month string `json:"month"`
}

// ThumbnailMake is the payload of a thumbnail:make task.
type ThumbnailMake struct {
	Image int `json:"image"`
	Width int `json:"width"`
}

// LocalURL is the broker the examples use when WARREN_URL is not set.
const LocalURL = "amqp://guest:guest@127.0.0.1:5672/"

// URL returns $WARREN_URL, or LocalURL.
func URL() string { return cmp.Or(os.Getenv("WARREN_URL"), LocalURL) }
