module herald.dev/pause

go 1.21
