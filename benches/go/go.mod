module filch.dev/compare

go 1.21
