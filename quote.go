package fsmirror

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// QuotePath returns p as it should be shown to a person: unchanged when it is
// printable UTF-8 without leading or trailing spaces, else Go-quoted, so a
// name holding a newline or invalid UTF-8 stays on one line and is unambiguous.
// The root path is shown as ".".
func QuotePath(p string) string {
	if p == "" {
		return "."
	}
	if !utf8.ValidString(p) || p[0] == ' ' || p[len(p)-1] == ' ' || p[0] == '"' {
		return strconv.Quote(p)
	}
	for _, r := range p {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(p)
		}
	}
	return p
}
