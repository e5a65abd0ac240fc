// Transcodes randomly damaged copies of real images and checks that every call
// returns (a Status, ok or not) without crashing, hanging or leaking. Built with
// AddressSanitizer and UBSan by scripts/run-asan.sh; usage:
//   damage_loop CORPUS_DIR [COUNT] [SEED]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "appliance/transcode.h"

namespace {

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> ImageFiles(const std::string& dir) {
  std::vector<std::string> files;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return files;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    const auto dot = name.rfind('.');
    if (dot == std::string::npos) continue;
    const std::string ext = name.substr(dot);
    if (ext == ".jpg" || ext == ".png" || ext == ".webp" || ext == ".gif") {
      files.push_back(dir + "/" + name);
    }
  }
  closedir(d);
  return files;
}

// One of: flip bytes, truncate, insert bytes, delete a range, damage a marker.
std::vector<uint8_t> Damage(std::vector<uint8_t> data, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % (n ? n : 1)); };
  switch (rng() % 5) {
    case 0:
      for (int i = 0, n = 1 + static_cast<int>(rng() % 16); i < n; ++i) {
        data[pick(data.size())] ^= static_cast<uint8_t>(1 + rng() % 255);
      }
      break;
    case 1:
      data.resize(pick(data.size()));
      break;
    case 2: {
      const size_t at = pick(data.size());
      std::vector<uint8_t> junk(1 + rng() % 64);
      for (auto& b : junk) b = static_cast<uint8_t>(rng());
      data.insert(data.begin() + static_cast<ptrdiff_t>(at), junk.begin(), junk.end());
      break;
    }
    case 3: {
      const size_t at = pick(data.size());
      const size_t n = std::min(data.size() - at, static_cast<size_t>(1 + rng() % 4096));
      data.erase(data.begin() + static_cast<ptrdiff_t>(at),
                 data.begin() + static_cast<ptrdiff_t>(at + n));
      break;
    }
    default:  // hit the headers, where the sizes and tables live
      for (int i = 0; i < 4; ++i) {
        data[pick(std::min<size_t>(data.size(), 2048))] = static_cast<uint8_t>(rng());
      }
  }
  return data;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [COUNT] [SEED]\n", argv[0]);
    return 2;
  }
  const int count = argc > 2 ? std::atoi(argv[2]) : 1000;
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  const std::vector<std::string> files = ImageFiles(argv[1]);
  if (files.empty()) {
    std::fprintf(stderr, "no images in %s\n", argv[1]);
    return 2;
  }
  std::vector<std::vector<uint8_t>> originals;
  for (const auto& f : files) originals.push_back(ReadFile(f));

  std::mt19937_64 rng(seed);
  int ok = 0, failed = 0;
  double slowest = 0;
  const appliance::Format formats[] = {appliance::Format::kJpeg, appliance::Format::kWebp,
                                       appliance::Format::kPng, appliance::Format::kAvif};
  for (int i = 0; i < count; ++i) {
    const size_t which = rng() % originals.size();
    const std::vector<uint8_t> data = Damage(originals[which], rng);
    appliance::TranscodeOptions options;
    options.width = 1 + static_cast<int>(rng() % 1200);
    options.height = rng() % 2 ? 0 : 1 + static_cast<int>(rng() % 1200);
    options.fit = static_cast<appliance::Fit>(rng() % 4);
    options.format = formats[rng() % 4];
    options.effort = options.format == appliance::Format::kAvif ? 0 : -1;  // fastest AVIF
    appliance::TranscodeResult result;
    const auto start = std::chrono::steady_clock::now();
    const appliance::Status status =
        appliance::Transcode(data.data(), data.size(), options, &result);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    slowest = std::max(slowest, seconds);
    if (seconds > 2.0) {
      std::printf("slow: case %d, %s damaged to %zu bytes, %dx%d fit %d format %s: %.2f s (%s)\n",
                  i, files[which].c_str(), data.size(), options.width, options.height,
                  static_cast<int>(options.fit), appliance::FormatName(options.format), seconds,
                  status.ok() ? "ok" : status.message().c_str());
    }
    status.ok() ? ++ok : ++failed;
  }
  std::printf("%d damaged files: %d transcoded, %d refused with a Status; slowest %.2f s\n",
              count, ok, failed, slowest);
  return 0;
}
