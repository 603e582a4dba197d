//go:build !wasip1

package callout

import (
	"fmt"
	"os"
)

var levelNames = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}

// Log writes a line to the host's log, tagged with the policy's name. Lines
// are truncated to 1 KiB and limited in number per call. Never log secrets.
//
// In native builds (`go test`) it writes to standard error.
func Log(level LogLevel, message string) {
	name := "LEVEL?"
	if int(level) < len(levelNames) {
		name = levelNames[level]
	}
	fmt.Fprintf(os.Stderr, "%s %s\n", name, message)
}
