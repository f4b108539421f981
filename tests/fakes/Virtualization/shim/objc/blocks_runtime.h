/* GNUstep's headers include <objc/blocks_runtime.h> (a header of libobjc2, the other GNU
 * runtime) when blocks are enabled. With GCC's libobjc the blocks runtime is libBlocksRuntime,
 * whose header is <Block.h>. */
#include <Block.h>
