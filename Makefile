# A thin front door over ./dev (which installs what is missing and drives
# CMake).  `make demo` and `make test` are the README's two commands.
.PHONY: all build demo test asan memcheck clean
all: build
build demo test asan memcheck:
	./dev $@
clean:
	rm -rf build build-asan build-valgrind
