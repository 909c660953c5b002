#ifndef DROVER_CDROVERFUZZ_H
#define DROVER_CDROVERFUZZ_H
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's driver (LLVM 11 and later), for a binary whose main is not libFuzzer's: drover-fuzz's
   entry point is Swift's, which hands over to it when built with -sanitize=fuzzer. Declared only;
   the symbol comes from the fuzzer runtime, which only that build links. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
