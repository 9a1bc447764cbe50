module github.com/tablelog/tablelog

go 1.25

require github.com/oklog/ulid/v2 v2.1.2 // indirect
