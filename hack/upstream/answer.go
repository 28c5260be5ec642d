package main

// The deterministic answer, as devtools/aiguillage/devtools/simulators/answers.py builds it:
// "Hello from <name>! This is a simulated answer." padded with filler words up to the number
// of stream chunks, split into that many pieces; one word is one token; prompt tokens are the
// words of the request's text fields.

import (
	"strings"
)

var filler = []string{
	"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed",
	"do", "eiusmod", "tempor",
}

const replyTemplate = "Hello from {name}! This is a simulated answer."

// Keys whose string values count as prompt text (answers._TEXT_KEYS).
var textKeys = map[string]bool{
	"text": true, "content": true, "input": true, "prompt": true, "system": true,
	"instructions": true, "messages": true, "contents": true,
}

type answer struct {
	text      string
	pieces    []string
	tokens    int
	truncated bool
}

// replyWords is answers.reply_words: the template's words, padded with filler to minWords.
func replyWords(name string, minWords int) []string {
	words := strings.Fields(strings.ReplaceAll(replyTemplate, "{name}", name))
	if len(words) == 0 {
		words = []string{"Hello"}
	}
	for i := 0; len(words) < minWords; i++ {
		words = append(words, filler[i%len(filler)])
	}
	return words
}

// buildAnswer is answers.build_answer: words in `chunks` pieces (fewer if fewer words).
func buildAnswer(words []string, chunks int, truncated bool) answer {
	n := len(words)
	groups := chunks
	if n < groups {
		groups = n
	}
	if groups < 1 {
		groups = 1
	}
	pieces := make([]string, 0, groups)
	for i := 0; i < groups; i++ {
		part := strings.Join(words[i*n/groups:(i+1)*n/groups], " ")
		if i > 0 {
			part = " " + part
		}
		pieces = append(pieces, part)
	}
	return answer{strings.Join(words, " "), pieces, n, truncated}
}

// countWords is answers.count_words: whitespace-separated words of the strings found under
// text keys, anywhere in a decoded JSON body.
func countWords(node any, key string) int {
	switch v := node.(type) {
	case string:
		if textKeys[key] {
			return len(strings.Fields(v))
		}
	case []any:
		total := 0
		for _, item := range v {
			total += countWords(item, key)
		}
		return total
	case map[string]any:
		total := 0
		for name, value := range v {
			total += countWords(value, name)
		}
		return total
	}
	return 0
}
