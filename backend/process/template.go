package process

import (
	"errors"
	"fmt"
	"strings"
)

// Placeholders are the names a command template may use in braces, for
// example "--port={port}".
var Placeholders = []string{
	"port",         // the free loopback port the server must listen on
	"host",         // the loopback address, 127.0.0.1
	"base_url",     // the path it is served under, "/servers/<id>/"
	"secret",       // the token it must require (prefer the environment)
	"id",           // the server id
	"owner",        // the owner's username
	"notebook_dir", // the owner's directory under the notebook root
}

// splitWords splits a command line into words the way a shell would,
// without a shell: words are separated by blanks, single quotes keep
// everything literally, double quotes keep everything but '\' before '"'
// or '\', and a '\' outside quotes keeps the next character. Nothing is
// expanded: no variables, globs or substitutions.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("command ends with a backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("command has an unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
					j++
				}
				cur.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, errors.New("command has an unterminated double quote")
			}
			i = j
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// expand replaces the placeholders in word with their values. A brace
// followed by a lowercase name and a closing brace is a placeholder and
// must be known; any other brace is kept as it is (JSON in an argument).
func expand(word string, vars map[string]string) (string, error) {
	var b strings.Builder
	for {
		open := strings.IndexByte(word, '{')
		if open < 0 {
			b.WriteString(word)
			return b.String(), nil
		}
		b.WriteString(word[:open])
		word = word[open:]
		n := nameLen(word[1:])
		if n == 0 || len(word) < n+2 || word[n+1] != '}' {
			b.WriteByte('{')
			word = word[1:]
			continue
		}
		name := word[1 : n+1]
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("unknown placeholder {%s}; known are %s",
				name, strings.Join(Placeholders, ", "))
		}
		b.WriteString(v)
		word = word[n+2:]
	}
}

// nameLen is the length of the placeholder name ([a-z_]+) at the start of s.
func nameLen(s string) int {
	n := 0
	for n < len(s) && (s[n] >= 'a' && s[n] <= 'z' || s[n] == '_') {
		n++
	}
	return n
}
