/* The parts of liblinphone's C API that callhelper-phone uses. */
#include <linphone/core.h>
#include <linphone/logging.h>
#include <bctoolbox/list.h>
