package ui

// RenderMarkdown exposes renderMarkdown to the external tests.
var RenderMarkdown = renderMarkdown
