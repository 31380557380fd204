/*
 * device_info.c - reads what the library needs to know about a device: names and versions for the
 * cache key and reports, limits (local memory, work-group size) for planning, capabilities (fp16,
 * fp64, NVIDIA compute capability) for choosing a kernel path.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define ASP_CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV 0x4000
#define ASP_CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV 0x4001

static void asp_device_string(cl_device_id d, cl_device_info what, char *out, size_t size) {
  out[0] = '\0';
  size_t got = 0;
  if (clGetDeviceInfo(d, what, size - 1, out, &got) != CL_SUCCESS) {
    /* Too long for the buffer: read into a larger one and truncate. */
    char big[4096];
    if (clGetDeviceInfo(d, what, sizeof big - 1, big, NULL) == CL_SUCCESS) {
      big[sizeof big - 1] = '\0';
      asp_strlcpy(out, big, size);
    }
    return;
  }
  out[size - 1] = '\0';
}

static void asp_platform_string(cl_platform_id p, cl_platform_info what, char *out, size_t size) {
  out[0] = '\0';
  if (clGetPlatformInfo(p, what, size - 1, out, NULL) != CL_SUCCESS) out[0] = '\0';
  out[size - 1] = '\0';
}

static int asp_has_extension(cl_device_id d, const char *ext) {
  size_t len = 0;
  if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &len) != CL_SUCCESS || len == 0) return 0;
  char buf[16384];
  if (len >= sizeof buf) len = sizeof buf - 1;
  if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, len, buf, NULL) != CL_SUCCESS) return 0;
  buf[len] = '\0';
  size_t n = strlen(ext);
  for (const char *s = buf; (s = strstr(s, ext)) != NULL; s += n) {
    int start_ok = (s == buf) || s[-1] == ' ';
    int end_ok = s[n] == '\0' || s[n] == ' ';
    if (start_ok && end_ok) return 1;
  }
  return 0;
}

adasplash_status asp_device_describe(const adasplash_context *ctx, cl_device_id device,
                                     asp_device *out) {
  memset(out, 0, sizeof *out);
  adasplash_device_info *info = &out->info;
  info->struct_size = sizeof *info;
  cl_platform_id platform = NULL;
  cl_int err = clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL);
  if (err != CL_SUCCESS) return asp_fail_cl(ctx, err, "clGetDeviceInfo(CL_DEVICE_PLATFORM)");
  out->platform = platform;
  asp_platform_string(platform, CL_PLATFORM_NAME, info->platform_name, sizeof info->platform_name);
  asp_platform_string(platform, CL_PLATFORM_VERSION, info->platform_version,
                      sizeof info->platform_version);
  asp_device_string(device, CL_DEVICE_NAME, info->device_name, sizeof info->device_name);
  asp_device_string(device, CL_DEVICE_VENDOR, info->device_vendor, sizeof info->device_vendor);
  asp_device_string(device, CL_DEVICE_VERSION, info->device_version, sizeof info->device_version);
  asp_device_string(device, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
  asp_device_string(device, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version,
                    sizeof info->opencl_c_version);
  clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof info->device_type, &info->device_type, NULL);
  clGetDeviceInfo(device, CL_DEVICE_VENDOR_ID, sizeof info->vendor_id, &info->vendor_id, NULL);
  clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof info->compute_units,
                  &info->compute_units, NULL);
  clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof info->global_mem_size,
                  &info->global_mem_size, NULL);
  clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof info->max_mem_alloc_size,
                  &info->max_mem_alloc_size, NULL);
  clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof info->local_mem_size,
                  &info->local_mem_size, NULL);
  clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof info->max_work_group_size,
                  &info->max_work_group_size, NULL);
  info->has_fp16 = asp_has_extension(device, "cl_khr_fp16");
  info->has_fp64 = asp_has_extension(device, "cl_khr_fp64");
  out->is_gpu = (info->device_type & CL_DEVICE_TYPE_GPU) != 0;
  out->is_cpu = (info->device_type & CL_DEVICE_TYPE_CPU) != 0;
  out->device_class = out->is_gpu ? ASP_DEVICE_GPU : ASP_DEVICE_CPU;
  out->is_nvidia = asp_contains_nocase(info->device_vendor, "nvidia") || info->vendor_id == 0x10de;
  out->is_amd = asp_contains_nocase(info->device_vendor, "advanced micro devices") ||
                asp_contains_nocase(info->device_vendor, "amd") || info->vendor_id == 0x1002;
  out->is_intel = asp_contains_nocase(info->device_vendor, "intel") || info->vendor_id == 0x8086;
  out->is_pocl = asp_contains_nocase(info->platform_name, "portable computing language") ||
                 asp_contains_nocase(info->platform_version, "pocl");
  out->is_oclgrind = asp_contains_nocase(info->platform_name, "oclgrind");
  if (out->is_nvidia && asp_has_extension(device, "cl_nv_device_attribute_query")) {
    cl_uint major = 0, minor = 0;
    if (clGetDeviceInfo(device, ASP_CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV, sizeof major, &major,
                        NULL) == CL_SUCCESS &&
        clGetDeviceInfo(device, ASP_CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV, sizeof minor, &minor,
                        NULL) == CL_SUCCESS)
      info->nvidia_compute_capability = (int)(10 * major + minor);
  }
  return ADASPLASH_SUCCESS;
}
