/*
 * consumer.c - a minimal program built against the installed adasplash-cl (through its CMake
 * package and through pkg-config): creates a context, prints the library version and the device,
 * and releases the context. Exit 0 on success, 77 with "SKIP" when there is no OpenCL device.
 */
#include <stdio.h>
#include <string.h>

#include <adasplash.h>

int main(void) {
  printf("adasplash-consumer: header %s, library %s\n", ADASPLASH_VERSION_STRING,
         adasplash_version());
  if (strcmp(adasplash_version(), ADASPLASH_VERSION_STRING) != 0) {
    printf("adasplash-consumer: the library and header versions differ\n");
    return 1;
  }
  adasplash_context *ctx = NULL;
  adasplash_status st = adasplash_context_create(NULL, &ctx);
  if (st != ADASPLASH_SUCCESS) {
    char msg[1024];
    adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
    if (st == ADASPLASH_ERROR_NO_DEVICE) {
      printf("adasplash-consumer: SKIP: no OpenCL device: %s\n", msg);
      return 77;
    }
    printf("adasplash-consumer: adasplash_context_create: %s: %s\n", adasplash_status_string(st),
           msg);
    return 1;
  }
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (adasplash_context_get_device_info(ctx, &info) == ADASPLASH_SUCCESS)
    printf("adasplash-consumer: device %s / %s\n", info.platform_name, info.device_name);
  adasplash_context_release(ctx);
  printf("adasplash-consumer: OK\n");
  return 0;
}
