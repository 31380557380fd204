/*
 * device_select.c - chooses an OpenCL device from a selection string (ADASPLASH_DEVICE rules):
 * "gpu", "cpu", "accelerator", a global index "N", "platform:device" indices, or a case-insensitive
 * substring of "<platform name> <device name>". The default is the first GPU, else the first
 * device.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ASP_MAX_PLATFORMS 16
#define ASP_MAX_DEVICES 64

typedef struct asp_device_entry {
  cl_platform_id platform;
  cl_device_id device;
  unsigned platform_index, device_index;
  cl_device_type type;
  char label[512]; /* "platform name device name" */
} asp_device_entry;

static size_t asp_list_devices(asp_device_entry *out, size_t cap) {
  cl_platform_id platforms[ASP_MAX_PLATFORMS];
  cl_uint np = 0;
  if (clGetPlatformIDs(ASP_MAX_PLATFORMS, platforms, &np) != CL_SUCCESS) return 0;
  if (np > ASP_MAX_PLATFORMS) np = ASP_MAX_PLATFORMS;
  size_t n = 0;
  for (cl_uint p = 0; p < np; ++p) {
    cl_device_id devices[ASP_MAX_DEVICES];
    cl_uint nd = 0;
    if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, ASP_MAX_DEVICES, devices, &nd) !=
        CL_SUCCESS)
      continue;
    if (nd > ASP_MAX_DEVICES) nd = ASP_MAX_DEVICES;
    char pname[256] = "";
    clGetPlatformInfo(platforms[p], CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
    for (cl_uint d = 0; d < nd && n < cap; ++d) {
      asp_device_entry *e = &out[n++];
      e->platform = platforms[p];
      e->device = devices[d];
      e->platform_index = p;
      e->device_index = d;
      e->type = 0;
      clGetDeviceInfo(devices[d], CL_DEVICE_TYPE, sizeof e->type, &e->type, NULL);
      char dname[256] = "";
      clGetDeviceInfo(devices[d], CL_DEVICE_NAME, sizeof dname - 1, dname, NULL);
      snprintf(e->label, sizeof e->label, "%s %s", pname, dname);
    }
  }
  return n;
}

static int asp_all_digits(const char *s) {
  if (!*s) return 0;
  for (; *s; ++s)
    if (!isdigit((unsigned char)*s)) return 0;
  return 1;
}

static int asp_parse_pair(const char *s, unsigned *a, unsigned *b) {
  const char *colon = strchr(s, ':');
  if (!colon || colon == s || !colon[1]) return 0;
  char left[32];
  size_t len = (size_t)(colon - s);
  if (len >= sizeof left) return 0;
  memcpy(left, s, len);
  left[len] = '\0';
  if (!asp_all_digits(left) || !asp_all_digits(colon + 1)) return 0;
  *a = (unsigned)strtoul(left, NULL, 10);
  *b = (unsigned)strtoul(colon + 1, NULL, 10);
  return 1;
}

adasplash_status asp_select_device(const char *selection, cl_platform_id *platform,
                                   cl_device_id *device, char *reason, size_t reason_size) {
  asp_device_entry entries[ASP_MAX_PLATFORMS * 4];
  size_t n = asp_list_devices(entries, sizeof entries / sizeof entries[0]);
  if (n == 0)
    return asp_fail(NULL, ADASPLASH_ERROR_NO_DEVICE,
                    "no OpenCL platform with a device was found (is an ICD such as pocl-opencl-icd "
                    "installed?)");
  const char *source = "options.device";
  if (!selection) {
    selection = asp_getenv("ADASPLASH_DEVICE");
    source = "ADASPLASH_DEVICE";
  }
  long chosen = -1;
  char why[128];
  if (!selection) {
    for (size_t i = 0; i < n && chosen < 0; ++i)
      if (entries[i].type & CL_DEVICE_TYPE_GPU) chosen = (long)i;
    asp_strlcpy(why, chosen >= 0 ? "default: first GPU" : "default: no GPU, first device",
                sizeof why);
    if (chosen < 0) chosen = 0;
  } else {
    unsigned pi = 0, di = 0;
    cl_device_type want = 0;
    if (asp_equals_nocase(selection, "gpu")) want = CL_DEVICE_TYPE_GPU;
    if (asp_equals_nocase(selection, "cpu")) want = CL_DEVICE_TYPE_CPU;
    if (asp_equals_nocase(selection, "accelerator")) want = CL_DEVICE_TYPE_ACCELERATOR;
    if (want) {
      for (size_t i = 0; i < n && chosen < 0; ++i)
        if (entries[i].type & want) chosen = (long)i;
    } else if (asp_all_digits(selection)) {
      unsigned long idx = strtoul(selection, NULL, 10);
      if (idx < n) chosen = (long)idx;
    } else if (asp_parse_pair(selection, &pi, &di)) {
      for (size_t i = 0; i < n && chosen < 0; ++i)
        if (entries[i].platform_index == pi && entries[i].device_index == di) chosen = (long)i;
    } else {
      for (size_t i = 0; i < n && chosen < 0; ++i)
        if (asp_contains_nocase(entries[i].label, selection)) chosen = (long)i;
    }
    snprintf(why, sizeof why, "%s=%.80s", source, selection);
    if (chosen < 0) {
      char list[2048] = "";
      for (size_t i = 0; i < n; ++i) {
        char line[600];
        snprintf(line, sizeof line, "%s[%zu] %u:%u %s", i ? "; " : "", i, entries[i].platform_index,
                 entries[i].device_index, entries[i].label);
        strncat(list, line, sizeof list - strlen(list) - 1);
      }
      return asp_fail(NULL, ADASPLASH_ERROR_NO_DEVICE,
                      "%s=\"%s\" matches no OpenCL device (use gpu, cpu, accelerator, an index N, "
                      "P:D or a name substring); devices: %s",
                      source, selection, list);
    }
  }
  *platform = entries[chosen].platform;
  *device = entries[chosen].device;
  if (reason && reason_size) asp_strlcpy(reason, why, reason_size);
  return ADASPLASH_SUCCESS;
}
